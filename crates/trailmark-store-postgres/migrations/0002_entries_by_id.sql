-- Looking an event up by id without knowing its tenant (an unbound key, the
-- viewer's event page) needs an index on id alone.
CREATE INDEX entries_id_any_tenant ON trailmark_ledger.entries (id);
