-- Index paths for reads that walked a tenant. Every SQLite index ends in the
-- rowid (pos), so these give a tenant's entries, and its entries of one
-- outcome, newest first without a sort: the first page a tenant-bound key
-- sees, and every failed login.
CREATE INDEX entries_tenant ON entries (tenant);
CREATE INDEX entries_outcome ON entries (tenant, outcome);
