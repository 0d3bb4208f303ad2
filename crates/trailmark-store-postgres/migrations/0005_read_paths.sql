-- Index paths for reads that walked a tenant: a tenant's entries newest
-- first (the first page a tenant-bound key sees), its entries of one outcome
-- (every failed login), and one IP's, each in position order so a page needs
-- no sort.
CREATE INDEX entries_tenant ON trailmark_ledger.entries (tenant, pos);
CREATE INDEX entries_outcome ON trailmark_ledger.entries (tenant, outcome, pos);
DROP INDEX trailmark_ledger.entries_ip;
CREATE INDEX entries_ip ON trailmark_ledger.entries (tenant, ip, pos) WHERE ip IS NOT NULL;
