"""The layering rules of pyproject's [tool.importlinter], checked on the source as it is: the
core imports nothing from django_bgjobs.delivery, and no package's modules import one another
in a circle (function-level imports count; imports for annotations only do not)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), "import-linter is in the test group: run scripts/test"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
