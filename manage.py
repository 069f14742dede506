#!/usr/bin/env python
"""Django's command-line utility: the example project by default, the tests with
DJANGO_SETTINGS_MODULE=tests.settings."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
