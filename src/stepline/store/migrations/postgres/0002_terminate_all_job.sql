-- A terminate-all job is kept in the database: which statuses it terminates and a token of
-- the run that set it, so that an engine starting later takes up a job that an earlier one
-- left unfinished (a stop or a crash), and ends only that job.
ALTER TABLE workflows ADD COLUMN terminator_job TEXT;

-- A flag set before this migration has no job to take up: it was left by a process that
-- stopped in the middle of one.
UPDATE workflows SET terminator_running = FALSE;
