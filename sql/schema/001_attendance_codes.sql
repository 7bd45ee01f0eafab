-- The national attendance code set (DfE school attendance guidance, codes in force
-- from 2024-08-19, plus the withdrawn codes that older marks may still carry).
-- The table, not the program, decides which codes exist, what they count as and the
-- dates they are valid on, so a change in guidance is a migration, not a rebuild.

CREATE TABLE attendance_codes (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z0-9/\\#]{1,2}$'),
    meaning     text NOT NULL,
    category    text NOT NULL CHECK (category IN
                  ('present', 'aea', 'authorised', 'unauthorised', 'not_possible', 'administrative')),
    possible    boolean NOT NULL,       -- counts as a possible session
    valid_from  date NOT NULL,
    valid_to    date,                   -- last day a new mark may use it; NULL: still in use
    note        text NOT NULL DEFAULT '',
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);

INSERT INTO attendance_codes (code, meaning, category, possible, valid_from, valid_to, note) VALUES
('/',  'present at the morning register', 'present', true, '1900-01-01', NULL, ''),
('\',  'present at the afternoon register', 'present', true, '1900-01-01', NULL, ''),
('L',  'late, arrived before the register closed', 'present', true, '1900-01-01', NULL, 'carries minutes_late'),
('K',  'attending education arranged by the local authority away from a school of registration', 'aea', true, '2024-08-19', NULL, ''),
('V',  'educational visit or trip', 'aea', true, '1900-01-01', NULL, ''),
('P',  'approved sporting activity', 'aea', true, '1900-01-01', NULL, ''),
('W',  'work experience', 'aea', true, '1900-01-01', NULL, ''),
('B',  'other approved supervised off-site educational activity', 'aea', true, '1900-01-01', NULL, 'not remote learning since 2024'),
('D',  'dual registered: the session belongs to the other school of registration', 'not_possible', false, '1900-01-01', NULL, 'the dual-registration code'),
('C1', 'leave for a regulated performance or regulated employment abroad', 'authorised', true, '2024-08-19', NULL, ''),
('M',  'medical or dental appointment', 'authorised', true, '1900-01-01', NULL, ''),
('J1', 'interview for employment or admission to another institution', 'authorised', true, '2024-08-19', NULL, 'replaces J'),
('S',  'study leave', 'authorised', true, '1900-01-01', NULL, ''),
('X',  'not of compulsory school age and not required to attend', 'not_possible', false, '1900-01-01', NULL, ''),
('C2', 'leave: temporary reduced (part-time) timetable', 'authorised', true, '2024-08-19', NULL, ''),
('C',  'leave for exceptional circumstances', 'authorised', true, '1900-01-01', NULL, ''),
('T',  'Gypsy, Roma or Traveller pupil travelling', 'authorised', true, '1900-01-01', NULL, ''),
('R',  'day of religious observance', 'authorised', true, '1900-01-01', NULL, ''),
('I',  'illness (not an appointment)', 'authorised', true, '1900-01-01', NULL, ''),
('E',  'suspended or permanently excluded, no alternative provision made', 'authorised', true, '1900-01-01', NULL, ''),
('Q',  'unable to attend: the local authority has not made access arrangements', 'not_possible', false, '2024-08-19', NULL, 'statistical treatment configurable'),
('Y1', 'unable to attend: transport normally provided is unavailable', 'not_possible', false, '2024-08-19', NULL, ''),
('Y2', 'unable to attend: widespread disruption to travel', 'not_possible', false, '2024-08-19', NULL, ''),
('Y3', 'unable to attend: part of the school premises closed', 'not_possible', false, '2024-08-19', NULL, ''),
('Y4', 'unable to attend: whole school site unexpectedly closed', 'not_possible', false, '2024-08-19', NULL, ''),
('Y5', 'unable to attend: in criminal justice detention', 'not_possible', false, '2024-08-19', NULL, ''),
('Y6', 'unable to attend: public health guidance or law', 'not_possible', false, '2024-08-19', NULL, ''),
('Y7', 'unable to attend: any other unavoidable cause', 'not_possible', false, '2024-08-19', NULL, 'also staggered starts'),
('G',  'holiday not agreed by the school', 'unauthorised', true, '1900-01-01', NULL, ''),
('N',  'reason for absence not yet provided', 'unauthorised', true, '1900-01-01', NULL, 'provisional: to be replaced'),
('O',  'absent in other or unknown circumstances', 'unauthorised', true, '1900-01-01', NULL, ''),
('U',  'arrived after the register closed', 'unauthorised', true, '1900-01-01', NULL, 'carries minutes_late'),
('Z',  'prospective pupil not yet on the admission register', 'administrative', false, '1900-01-01', NULL, ''),
('#',  'planned whole or partial school closure', 'administrative', false, '1900-01-01', NULL, ''),
('H',  'agreed family holiday', 'authorised', true, '1900-01-01', '2024-08-18', 'withdrawn 2024'),
('J',  'interview', 'aea', true, '1900-01-01', '2024-08-18', 'withdrawn 2024, now J1'),
('Y',  'unable to attend due to exceptional circumstances', 'not_possible', false, '1900-01-01', '2024-08-18', 'withdrawn 2024, split into Y1-Y7'),
('F',  'agreed extended family holiday', 'authorised', true, '1900-01-01', '2013-08-31', 'withdrawn; end date approximate');
