-- Seed a migrated Herald database for the backup / archival benchmarks.
-- Parameters (psycopg, client-side binding): %(accounts)s, %(posts)s, %(attempts)s.
-- Ids are derived from the series number (md5 -> uuid), so attempts reference real
-- posts and every post's platform is its account's. Attempts fall in the last hours,
-- inside the partitions the migration created.

INSERT INTO social_accounts (id, user_id, platform, external_id, display_name,
                             access_token_enc, refresh_token_enc, token_expires_at)
SELECT md5('account' || a)::uuid,
       md5('user' || (a %% 50))::uuid,
       (ARRAY['instagram', 'facebook', 'youtube'])[a %% 3 + 1],
       'ext-' || a,
       'Account ' || a,
       'gAAAAA' || repeat(md5('token' || a), 3),
       'gAAAAA' || repeat(md5('refresh' || a), 3),
       now() + (a %% 60) * interval '1 day'
FROM generate_series(0, %(accounts)s - 1) AS a;

INSERT INTO scheduled_posts (id, user_id, social_account_id, platform, content, media,
                             scheduled_at, status, attempts, external_post_id,
                             published_at, created_at, updated_at)
SELECT md5('post' || p)::uuid,
       md5('user' || ((p %% %(accounts)s) %% 50))::uuid,
       md5('account' || (p %% %(accounts)s))::uuid,
       (ARRAY['instagram', 'facebook', 'youtube'])[(p %% %(accounts)s) %% 3 + 1],
       'Post ' || p || ': ' || repeat(md5(p::text), 1 + p %% 4),
       CASE WHEN p %% 5 = 0
            THEN jsonb_build_array('https://cdn.example.com/m/' || md5(p::text) || '.jpg')
            ELSE '[]'::jsonb END,
       now() - (p %% 10000) * interval '1 minute',
       CASE WHEN p %% 10 = 0 THEN 'scheduled' WHEN p %% 37 = 0 THEN 'failed'
            ELSE 'published' END,
       1 + p %% 3,
       CASE WHEN p %% 10 <> 0 AND p %% 37 <> 0 THEN 'ext_' || md5('x' || p) END,
       CASE WHEN p %% 10 <> 0 AND p %% 37 <> 0
            THEN now() - (p %% 10000) * interval '1 minute' END,
       now() - interval '1 day',
       now()
FROM generate_series(0, %(posts)s - 1) AS p;

INSERT INTO post_attempts (attempted_at, post_id, attempt, outcome, http_status,
                           latency_ms, error, task_id, worker)
SELECT now() - (t %% 600) * interval '1 minute',
       md5('post' || (t %% %(posts)s))::uuid,
       1 + t / %(posts)s,
       CASE WHEN t %% 23 = 0 THEN 'transient_error' ELSE 'published' END,
       CASE WHEN t %% 23 = 0 THEN 503 ELSE 200 END,
       40 + t %% 400,
       CASE WHEN t %% 23 = 0 THEN 'HTTP 503 from platform: service unavailable' END,
       md5('task' || t)::uuid::text,
       'posts' || (t %% 4) || '@bench'
FROM generate_series(0, %(attempts)s - 1) AS t;
