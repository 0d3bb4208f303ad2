-- Why an entry's payload is gone: 'erased' or 'expired', and the _system
-- seq of the record of it. Set by the erasure itself; reads show it.
ALTER TABLE entries ADD COLUMN removed_kind TEXT;
ALTER TABLE entries ADD COLUMN removed_by INTEGER;
