-- bench/dashboard.py: :jobs jobs over the 7 days before :'now', and their attempts, in one
-- transaction (psql variables: jobs, now). Every figure is derived from the row number i with
-- a hash, so a reload writes the same rows (relative to :'now').
--
-- Traffic: ~:jobs/7 jobs a day in 8 job names over 3 queues; 1% dead after 3 failed attempts
-- (a tenth of them lost), 0.3% cancelled, 4% succeeded at the second attempt; the last 20
-- minutes hold a backlog of queued jobs and a few running ones; ~2,000 jobs scheduled for
-- later and ~100 retrying. Attempts are inserted in the order they ended (as workers do).

SET LOCAL work_mem = '256MB';

CREATE FUNCTION pg_temp.u(i bigint, k int) RETURNS float8 LANGUAGE sql IMMUTABLE
    AS $$ SELECT (hashint8(i * 64 + k) & 2147483647)::float8 / 2147483648.0 $$;

CREATE TEMP TABLE gen ON COMMIT DROP AS
WITH base AS (
    SELECT i,
           :'now'::timestamptz - interval '7 days' + (interval '7 days' * i / :jobs) AS created,
           pg_temp.u(i, 1) AS u1, pg_temp.u(i, 2) AS u2, pg_temp.u(i, 3) AS u3,
           width_bucket(pg_temp.u(i, 1), ARRAY[0.35, 0.45, 0.65, 0.75, 0.85, 0.90, 0.95]) + 1
               AS kind
    FROM generate_series(1, :jobs) AS i
), shaped AS (
    SELECT b.*,
           (ARRAY['shop.send_email', 'shop.send_sms', 'shop.resize_image', 'shop.sync_inventory',
                  'shop.charge_card', 'shop.build_report', 'shop.export_csv', 'shop.cleanup'])[kind]
               AS name,
           (ARRAY['emails', 'emails', 'default', 'default', 'default', 'slow', 'slow',
                  'default'])[kind] AS queue,
           (ARRAY[120, 80, 600, 1500, 300, 20000, 8000, 50])[kind] AS base_ms,
           extract(epoch FROM :'now'::timestamptz - created) AS age,
           -- the newest jobs ran quickly: their timings are scaled into their age
           least(1.0, extract(epoch FROM :'now'::timestamptz - created) / 300.0) AS s
    FROM base b
), statused AS (
    SELECT s.*,
           CASE WHEN age < 1200 AND u2 < 0.3 THEN 'queued'
                WHEN age < 300 AND u2 >= 0.3 AND u2 < 0.33 THEN 'running'
                WHEN age < 86400 AND u2 >= 0.5 AND u2 < 0.515 THEN 'scheduled'
                WHEN age >= 300 AND age < 3600 AND u2 >= 0.6 AND u2 < 0.62 THEN 'retrying'
                WHEN u2 < 0.01 THEN 'dead'
                WHEN u2 < 0.013 THEN 'cancelled'
                ELSE 'succeeded' END AS status
    FROM shaped s
)
SELECT st.*,
       CASE status WHEN 'dead' THEN 3 WHEN 'retrying' THEN 1 WHEN 'running' THEN 1
                   WHEN 'succeeded' THEN CASE WHEN u3 < 0.04 THEN 2 ELSE 1 END
                   ELSE 0 END AS attempts,
       CASE status WHEN 'dead' THEN 3 WHEN 'retrying' THEN 1 WHEN 'running' THEN 0
                   WHEN 'succeeded' THEN CASE WHEN u3 < 0.04 THEN 2 ELSE 1 END
                   ELSE 0 END AS runs,
       s * (base_ms * 3 / 1000.0 + 30) AS spacing,
       (lpad(to_hex((extract(epoch FROM created) * 1000)::bigint), 12, '0') || '7'
        || lpad(to_hex(hashint8(i) & 4095), 3, '0') || '8' || lpad(to_hex(i), 15, '0'))::uuid
           AS id
FROM statused st;

CREATE FUNCTION pg_temp.start_at(created timestamptz, spacing float8, s float8, i bigint, k int)
    RETURNS timestamptz LANGUAGE sql IMMUTABLE
    AS $$ SELECT created + make_interval(secs => (k - 1) * spacing
                                         + s * (0.005 + 3.0 * pg_temp.u(i, 10 + k) ^ 4)) $$;
CREATE FUNCTION pg_temp.dur_ms(base_ms int, s float8, i bigint, k int)
    RETURNS int LANGUAGE sql IMMUTABLE
    AS $$ SELECT (s * base_ms * (0.3 + 2.5 * pg_temp.u(i, 20 + k) ^ 2))::int $$;
CREATE FUNCTION pg_temp.worker(i bigint, k int) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT 'worker-' || floor(pg_temp.u(i, 40 + k) * 3)::int || '.shop.internal:'
                 || (1000 + floor(pg_temp.u(i, 50 + k) * 4)::int) $$;

INSERT INTO django_bgjobs_job (
    id, name, queue, priority, args, kwargs, status, attempts, max_attempts, idempotency_key,
    created_at, run_after, published_at, started_at, finished_at, lease_expires_at, worker,
    cancel_requested, result, error, progress_done, progress_total, progress_message)
SELECT id, name, queue, 0, jsonb_build_array(i), jsonb_build_object('account', i % 5000),
       status, attempts, 3, NULL, created,
       CASE status WHEN 'scheduled' THEN :'now'::timestamptz + make_interval(secs => u3 * 21600)
                   WHEN 'retrying' THEN :'now'::timestamptz + interval '30 seconds' END,
       CASE WHEN status = 'scheduled' THEN NULL
            ELSE created + make_interval(secs => greatest(attempts - 1, 0) * spacing) END,
       CASE WHEN attempts > 0 THEN pg_temp.start_at(created, spacing, s, i, attempts) END,
       CASE status
           WHEN 'cancelled' THEN created + interval '5 seconds'
           WHEN 'succeeded' THEN pg_temp.start_at(created, spacing, s, i, attempts)
               + make_interval(secs => pg_temp.dur_ms(base_ms, s, i, attempts) / 1000.0)
           WHEN 'dead' THEN pg_temp.start_at(created, spacing, s, i, attempts)
               + make_interval(secs => pg_temp.dur_ms(base_ms, s, i, attempts) / 1000.0) END,
       CASE WHEN status = 'running' THEN :'now'::timestamptz + interval '60 seconds' END,
       CASE WHEN attempts > 0 THEN pg_temp.worker(i, attempts) ELSE '' END,
       false,
       CASE WHEN status = 'succeeded' THEN jsonb_build_object('ok', true, 'items', i % 97) END,
       CASE WHEN status IN ('dead', 'retrying')
            THEN 'ConnectionError: upstream answered 503 for account ' || (i % 5000) ELSE '' END,
       CASE WHEN status = 'running' AND kind >= 6 THEN (u3 * 100)::int END,
       CASE WHEN status = 'running' AND kind >= 6 THEN 100 END,
       CASE WHEN status = 'running' AND kind >= 6 THEN 'rows written' ELSE '' END
FROM gen ORDER BY i;

INSERT INTO django_bgjobs_jobrun (
    job_id, attempt, status, worker, started_at, finished_at, duration_ms, error, traceback)
SELECT id, k, run_status, pg_temp.worker(i, k), started, started + make_interval(secs => ms / 1000.0),
       ms,
       CASE run_status
           WHEN 'failed' THEN 'ConnectionError: upstream answered 503 for account ' || (i % 5000)
           WHEN 'lost' THEN 'lost: the worker stopped heartbeating (killed, out of memory, or gone)'
           ELSE '' END,
       CASE WHEN run_status = 'failed' THEN
           'Traceback (most recent call last):' || chr(10)
           || '  File "/srv/shop/django_bgjobs/execution.py", line 212, in run_attempt' || chr(10)
           || '    result = spec.func(*job.args, **job.kwargs)' || chr(10)
           || '  File "/srv/shop/shop/jobs.py", line 88, in ' || replace(name, 'shop.', '') || chr(10)
           || '    response = client.post(url, json=payload, timeout=10)' || chr(10)
           || '  File "/srv/shop/shop/client.py", line 41, in post' || chr(10)
           || '    raise ConnectionError(f"upstream answered {status} for account {account}")'
           || chr(10) || 'ConnectionError: upstream answered 503 for account ' || (i % 5000)
       ELSE '' END
FROM (
    SELECT g.*, k, pg_temp.start_at(created, spacing, s, i, k) AS started,
           pg_temp.dur_ms(base_ms, s, i, k) AS ms,
           CASE WHEN status = 'succeeded' AND k = attempts THEN 'succeeded'
                WHEN status = 'dead' AND k = 3 AND u3 < 0.1 THEN 'lost'
                ELSE 'failed' END AS run_status
    FROM gen g, generate_series(1, g.runs) AS k
) r
ORDER BY started + make_interval(secs => ms / 1000.0);
