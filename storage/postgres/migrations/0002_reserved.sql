-- PLACEHOLDER so that 0003 applies on this branch (the runner wants no
-- gap): 0002 is another branch's (0002_tenancy.sql). Delete this file
-- when that one is merged.
SELECT 1;
