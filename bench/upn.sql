-- pg_temp.upn(body): a valid UPN from 12 digits, with its check letter in front (the
-- weighted sum of the digits modulo 23, in the DfE's letter table). For the bench's own
-- seeding (bench/seed.sql, bench/reads.sh), in the session that includes it.
CREATE OR REPLACE FUNCTION pg_temp.upn(p_body text) RETURNS text LANGUAGE sql AS $$
  SELECT substr('ABCDEFGHJKLMNPQRTUVWXYZ',
                (SELECT sum(substr(p_body, i, 1)::int * (i + 1)) FROM generate_series(1, 12) i)::int % 23 + 1,
                1) || p_body
$$;
