-- What the events sent to an instance and not yet taken by a wait weigh, in UTF-8 bytes, so
-- that a send can be checked against the storage limit without reading them. The trigger
-- keeps it on every path that adds an event, hands one to a wait, or deletes one. Each of
-- those paths holds the instance's row first, then the event's, so the trigger's update of
-- the instance waits for no lock that another of them holds.
ALTER TABLE instances ADD COLUMN buffered_bytes BIGINT NOT NULL DEFAULT 0;

UPDATE instances i SET buffered_bytes = e.total
FROM (
    SELECT instance_pk, SUM(octet_length(payload)) AS total FROM events
    WHERE consumed_by IS NULL GROUP BY instance_pk
) e
WHERE i.pk = e.instance_pk;

CREATE FUNCTION stepline_count_buffered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.consumed_by IS NULL THEN
        UPDATE instances SET buffered_bytes = buffered_bytes - octet_length(OLD.payload)
        WHERE pk = OLD.instance_pk;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.consumed_by IS NULL THEN
        UPDATE instances SET buffered_bytes = buffered_bytes + octet_length(NEW.payload)
        WHERE pk = NEW.instance_pk;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_buffered_added AFTER INSERT ON events
FOR EACH ROW WHEN (NEW.consumed_by IS NULL) EXECUTE FUNCTION stepline_count_buffered();

CREATE TRIGGER events_buffered_moved AFTER UPDATE OF consumed_by ON events
FOR EACH ROW WHEN ((OLD.consumed_by IS NULL) <> (NEW.consumed_by IS NULL))
EXECUTE FUNCTION stepline_count_buffered();

CREATE TRIGGER events_buffered_deleted AFTER DELETE ON events
FOR EACH ROW WHEN (OLD.consumed_by IS NULL) EXECUTE FUNCTION stepline_count_buffered();
