-- A list filtered by status (and a terminate-all job's pass) searched the instances of the
-- whole workflow in creation order, reading every row to test its status: a status that few
-- instances have took as long as reading them all. With the list's order after the status,
-- the status index gives those rows alone, in order; expires_on keeps counts from the index.
DROP INDEX instances_by_status;
CREATE INDEX instances_by_status ON instances (workflow_id, status, created_on, pk, expires_on);
