-- Bench data: two schools and :pupils dual-registered pupils (valid UPNs), on roll for
-- the last 200 days, at the PRU Monday to Wednesday and at home Thursday and Friday.
\set ON_ERROR_STOP on
\ir upn.sql
INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Bench Home School', 'mainstream'),
                                             ('100002', 'Bench PRU', 'pru')
ON CONFLICT DO NOTHING;
INSERT INTO pupils (upn, given_name, family_name, date_of_birth)
SELECT pg_temp.upn('801' || lpad((2000 + i / 1000)::text, 4, '0') || '14' || lpad((i % 1000)::text, 3, '0')),
       'Pupil', 'Number ' || i, '2012-01-01'
  FROM generate_series(0, :pupils - 1) i
ON CONFLICT DO NOTHING;
INSERT INTO registrations (upn, urn, role, start_date)
SELECT upn, '100001', 'main', dualreg_today() - 200 FROM pupils WHERE family_name LIKE 'Number %'
ON CONFLICT DO NOTHING;
INSERT INTO registrations (upn, urn, role, start_date)
SELECT upn, '100002', 'subsidiary', dualreg_today() - 200 FROM pupils WHERE family_name LIKE 'Number %'
ON CONFLICT DO NOTHING;
INSERT INTO registration_schedules (registration_id, effective_from, mask)
SELECT id, start_date, 63 FROM registrations WHERE role = 'subsidiary'
ON CONFLICT DO NOTHING;
-- The steady state: the daily job has already given the school that does not expect the
-- pupil its derived D for each of the last 150 days (made here in one statement rather
-- than day by day).
INSERT INTO marks (upn, urn, date, session, code, source)
SELECT p.upn, CASE WHEN extract(isodow FROM d) <= 3 THEN '100001' ELSE '100002' END,
       d::date, s.session, 'D', 'derived'
  FROM pupils p,
       generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d,
       (VALUES ('AM'), ('PM')) s(session)
 WHERE extract(isodow FROM d) <= 5 AND p.family_name LIKE 'Number %'
ON CONFLICT DO NOTHING;
