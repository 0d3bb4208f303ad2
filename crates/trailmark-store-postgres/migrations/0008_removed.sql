-- Why an entry's payload is gone: 'erased' or 'expired', and the _system
-- seq of the record of it. Set by the erasure itself; reads show it.
ALTER TABLE trailmark_ledger.entries ADD COLUMN removed_kind text;
ALTER TABLE trailmark_ledger.entries ADD COLUMN removed_by bigint;
