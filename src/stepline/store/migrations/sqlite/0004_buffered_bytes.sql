-- What the events sent to an instance and not yet taken by a wait weigh, in UTF-8 bytes, so
-- that a send can be checked against the storage limit without reading them. The triggers
-- keep it on every path that adds an event, hands one to a wait, or deletes one.
ALTER TABLE instances ADD COLUMN buffered_bytes INTEGER NOT NULL DEFAULT 0;

UPDATE instances SET buffered_bytes = (
    SELECT SUM(length(CAST(e.payload AS BLOB))) FROM events e
    WHERE e.instance_pk = instances.pk AND e.consumed_by IS NULL
) WHERE pk IN (SELECT instance_pk FROM events WHERE consumed_by IS NULL);

CREATE TRIGGER events_buffered_added AFTER INSERT ON events
WHEN NEW.consumed_by IS NULL
BEGIN
    UPDATE instances SET buffered_bytes = buffered_bytes + length(CAST(NEW.payload AS BLOB))
    WHERE pk = NEW.instance_pk;
END;

CREATE TRIGGER events_buffered_taken AFTER UPDATE OF consumed_by ON events
WHEN OLD.consumed_by IS NULL AND NEW.consumed_by IS NOT NULL
BEGIN
    UPDATE instances SET buffered_bytes = buffered_bytes - length(CAST(OLD.payload AS BLOB))
    WHERE pk = OLD.instance_pk;
END;

CREATE TRIGGER events_buffered_given_back AFTER UPDATE OF consumed_by ON events
WHEN OLD.consumed_by IS NOT NULL AND NEW.consumed_by IS NULL
BEGIN
    UPDATE instances SET buffered_bytes = buffered_bytes + length(CAST(NEW.payload AS BLOB))
    WHERE pk = NEW.instance_pk;
END;

CREATE TRIGGER events_buffered_deleted AFTER DELETE ON events
WHEN OLD.consumed_by IS NULL
BEGIN
    UPDATE instances SET buffered_bytes = buffered_bytes - length(CAST(OLD.payload AS BLOB))
    WHERE pk = OLD.instance_pk;
END;
