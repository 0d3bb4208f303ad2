//! Row diffs for captured changes, and the record state they lead to.

use serde_json::{Map, Value};

use crate::{Change, Changes};

/// A database row: column name → value.
pub type Row = Map<String, Value>;

/// The changes between two versions of a row, moved out of them.
///
/// - insert (`old` is `None`): every column, `old: null`;
/// - delete (`new` is `None`): every column, `new: null`;
/// - update: only the columns whose value differs (a column present on one
///   side only counts as changed, its missing side `null`).
pub fn diff_rows(old: Option<Row>, new: Option<Row>) -> Changes {
    let mut before = old.unwrap_or_default();
    let mut changes = Changes::new();
    for (column, value) in new.unwrap_or_default() {
        match before.remove(&column) {
            Some(previous) if previous == value => {}
            previous => {
                let old = previous.unwrap_or(Value::Null);
                changes.insert(column, Change { old, new: value });
            }
        }
    }
    // What is left was only in the old row.
    for (column, value) in before {
        let new = Value::Null;
        changes.insert(column, Change { old: value, new });
    }
    changes
}

/// The actions of events about every record of a type at once, naming
/// none (`resource.id` absent): capture's records of a whole table (a
/// `TRUNCATE`, DDL that rewrote its rows, capture paused and resumed). A
/// record's history shows them among the record's own events, from its
/// first on ([`RecordState::apply_to_type`]).
pub const WHOLE_TYPE_ACTIONS: [&str; 4] =
    ["truncate", "rewrite", "capture.paused", "capture.resumed"];

/// What a record looked like after an event, built up event by event.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RecordState {
    /// The known fields (only those some event has shown).
    pub fields: Row,
    /// True after a `delete` or `truncate`.
    pub deleted: bool,
    /// Fields an event whose payload is gone may have changed, and no
    /// event since has shown: their value cannot be known.
    pub unknown: std::collections::BTreeSet<String>,
    /// Whether an event whose payload is gone came after the record was
    /// last created: fields it set that no later event shows are missing.
    pub incomplete: bool,
}

impl RecordState {
    /// Applies one event: `delete` and `truncate` remove the record, `create`
    /// starts it afresh, any other action overlays the new values.
    pub fn apply(&mut self, action: &str, changes: Option<&Changes>) {
        match action {
            "delete" | "truncate" => {
                self.fields.clear();
                self.unknown.clear();
                self.incomplete = false;
                self.deleted = true;
                return;
            }
            "create" => {
                self.fields.clear();
                self.unknown.clear();
                self.incomplete = false;
                self.deleted = false;
            }
            _ => {}
        }
        for (field, change) in changes.into_iter().flatten() {
            self.unknown.remove(field);
            self.fields.insert(field.clone(), change.new.clone());
        }
    }

    /// Applies an event about every record of the record's type (one of
    /// [`WHOLE_TYPE_ACTIONS`]); `one_part`: it named one part of the type
    /// (a partition of the table), which may or may not hold the record.
    /// A truncate of the whole deletes the record. A truncate of one part
    /// may have, a rewrite may have changed any value, and while capture
    /// was paused anything may have happened: from them on the record's
    /// fields are unknown until an event shows them again, and the state is
    /// incomplete (as after an event whose payload is gone). A pause
    /// changes nothing by itself.
    pub fn apply_to_type(&mut self, action: &str, one_part: bool) {
        match action {
            "truncate" if !one_part => self.apply("truncate", None),
            // What a deleted record was is not touched by DDL on its table.
            "truncate" | "rewrite" if self.deleted => {}
            "truncate" | "rewrite" | "capture.resumed" => {
                let fields = std::mem::take(&mut self.fields);
                self.unknown.extend(fields.into_iter().map(|(k, _)| k));
                self.incomplete = true;
            }
            _ => {}
        }
    }

    /// Applies an event whose payload is gone (erased or expired): its
    /// action is known (it is in the envelope), its changes are not. A
    /// delete still deletes; a create starts a record of unknown fields;
    /// any other event may have changed every field.
    pub fn apply_removed(&mut self, action: &str) {
        if matches!(action, "delete" | "truncate") {
            self.apply(action, None);
            return;
        }
        if action == "create" {
            self.apply(action, None);
        }
        let fields = std::mem::take(&mut self.fields);
        self.unknown.extend(fields.into_iter().map(|(k, _)| k));
        self.incomplete = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        let Value::Object(map) = v else {
            panic!("not an object")
        };
        map
    }

    fn as_json(changes: &Changes) -> Value {
        crate::event::changes_to_json(changes)
    }

    #[test]
    fn a_removed_payload_makes_what_it_may_have_changed_unknown() {
        let mut s = RecordState::default();
        let create = crate::Changes::from_iter([(
            "email".to_owned(),
            crate::Change {
                old: Value::Null,
                new: json!("a@x"),
            },
        )]);
        s.apply("create", Some(&create));
        s.apply_removed("update");
        assert!(s.fields.is_empty());
        assert_eq!(s.unknown.iter().collect::<Vec<_>>(), vec!["email"]);
        assert!(s.incomplete);
        s.apply("update", Some(&create));
        assert!(s.unknown.is_empty(), "a later event shows the field again");
        assert!(
            s.incomplete,
            "fields the lost event set may still be missing"
        );
        s.apply_removed("delete");
        assert!(s.deleted && !s.incomplete && s.unknown.is_empty());
    }

    #[test]
    fn events_about_the_whole_type_delete_or_unsettle_the_record() {
        let created = diff_rows(None, Some(row(json!({"id": 1, "price": "1"}))));
        let fresh = || {
            let mut s = RecordState::default();
            s.apply("create", Some(&created));
            s
        };
        let mut s = fresh();
        s.apply_to_type("capture.paused", false);
        assert_eq!(s, fresh(), "a pause changes nothing yet");
        s.apply_to_type("truncate", false);
        assert!(s.deleted && s.fields.is_empty() && !s.incomplete);
        s.apply_to_type("rewrite", false);
        assert!(s.deleted && !s.incomplete, "a deleted record stays so");
        for (action, one_part) in [
            ("truncate", true),
            ("rewrite", false),
            ("capture.resumed", false),
        ] {
            let mut s = fresh();
            s.apply_to_type(action, one_part);
            assert!(
                !s.deleted && s.fields.is_empty() && s.incomplete,
                "{action}"
            );
            assert_eq!(s.unknown.iter().collect::<Vec<_>>(), ["id", "price"]);
        }
        let mut s = fresh();
        s.apply("delete", None);
        s.apply_to_type("capture.resumed", false);
        assert!(
            s.deleted && s.incomplete,
            "it may have been made again meanwhile"
        );
    }

    #[test]
    fn insert_lists_every_column_with_old_null() {
        let new = row(json!({"id": 61, "name": "Acme", "price": "19.99"}));
        assert_eq!(
            as_json(&diff_rows(None, Some(new))),
            json!({"id": {"old": null, "new": 61}, "name": {"old": null, "new": "Acme"},
                   "price": {"old": null, "new": "19.99"}})
        );
    }

    #[test]
    fn delete_lists_every_column_with_new_null() {
        let old = row(json!({"id": 61, "note": null}));
        assert_eq!(
            as_json(&diff_rows(Some(old), None)),
            json!({"id": {"old": 61, "new": null}, "note": {"old": null, "new": null}})
        );
    }

    #[test]
    fn update_lists_only_changed_columns() {
        let old = row(json!({"id": 61, "price": "19.99", "tags": [1], "gone": 1}));
        let new = row(json!({"id": 61, "price": "24.99", "tags": [1], "added": null}));
        assert_eq!(
            as_json(&diff_rows(Some(old.clone()), Some(new))),
            json!({"price": {"old": "19.99", "new": "24.99"}, "gone": {"old": 1, "new": null},
                   "added": {"old": null, "new": null}})
        );
        assert!(diff_rows(Some(old.clone()), Some(old)).is_empty());
    }

    #[test]
    fn state_follows_create_update_delete_and_recreate() {
        let mut state = RecordState::default();
        let created = diff_rows(None, Some(row(json!({"id": 1, "price": "1"}))));
        state.apply("create", Some(&created));
        assert_eq!(state.fields, row(json!({"id": 1, "price": "1"})));
        let updated = diff_rows(
            Some(row(json!({"price": "1"}))),
            Some(row(json!({"price": "2"}))),
        );
        state.apply("update", Some(&updated));
        assert_eq!(state.fields, row(json!({"id": 1, "price": "2"})));
        state.apply("delete", None);
        assert!(state.deleted && state.fields.is_empty());
        state.apply("create", Some(&created));
        assert!(!state.deleted);
        assert_eq!(state.fields["price"], json!("1"));
    }
}
