-- A terminate-all job is held by the process that runs it until this time (epoch ms), and
-- renewed while it runs: when that process dies, any other takes the job up once the time
-- has passed, without waiting for a process to start. NULL: nobody holds it (a job left by
-- an earlier version, or by a process that stopped in the middle of it).
ALTER TABLE workflows ADD COLUMN terminator_lease INTEGER;
