-- Looking an event up by id without knowing its tenant (an unbound key, the
-- viewer's event page) used the (tenant, id) index only with a tenant: without
-- one it scanned every entry.
CREATE INDEX entries_id_any_tenant ON entries (id);
