//! Role vars read once into typed structs.
//!
//! Every role var has a default in its role's YAML (the one layer users see in the README), and
//! `vars::schema::check` has already coerced and checked each var's type with its span. What is
//! left here is the element types inside lists and mappings: an error names the var and points
//! at where it is written. A var set to `null` counts as unset (an `Option` field is `None`).

use std::cell::RefCell;

use serde::de::{DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, value::MapAccessDeserializer};
use serde_json::Value as Json;

use crate::error::InputError;
use crate::vars::resolve::HostVars;
use crate::vars::schema::VarSpec;

/// Reads the vars named in `specs` from `vars` into `T` (its fields are named like the vars).
pub fn from_vars<T: DeserializeOwned>(vars: &HostVars, specs: &[VarSpec]) -> Result<T, InputError> {
    let entries: Vec<(String, Json)> = specs
        .iter()
        .filter_map(|s| vars.get(s.name).filter(|r| !r.value.is_null()).map(|r| (s.name.to_string(), r.value.clone())))
        .collect();
    let failed = RefCell::new(None);
    let access = Access { entries: entries.into_iter(), value: None, failed: &failed };
    T::deserialize(MapAccessDeserializer::new(access)).map_err(|e| match failed.borrow().as_deref() {
        Some(name) => {
            let doc = specs.iter().find(|s| s.name == name).map_or("", |s| s.doc);
            let shown = vars.get(name).filter(|r| !r.secret).map_or("***".to_string(), |r| r.value.to_string());
            let msg = format!("`{name}`: {e}, found {shown}");
            match vars.get(name) {
                Some(r) => InputError::at(r.span, msg, "wrong type inside").with_help(format!("{name}: {doc}")),
                None => InputError::plain(format!("{}: {msg}", vars.host)),
            }
        }
        // A required var without a value: only a `null` written over its default gets here.
        None => InputError::plain(format!("{}: {e} (a role var set to null has no default to fall back on)", vars.host)),
    })
}

/// A map access over (var name, value) pairs that remembers which var failed to deserialize.
struct Access<'a> {
    entries: std::vec::IntoIter<(String, Json)>,
    value: Option<(String, Json)>,
    failed: &'a RefCell<Option<String>>,
}

impl<'de> MapAccess<'de> for Access<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some((k.clone(), v));
                seed.deserialize(k.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let (k, v) = self.value.take().expect("a value follows its key");
        seed.deserialize(v).inspect_err(|_| *self.failed.borrow_mut() = Some(k))
    }
}

/// Maps a value check's message (from `crate::sh`) to an error at where `name` is set.
pub fn check_at(vars: &HostVars, name: &str, result: Result<(), String>) -> Result<(), InputError> {
    result.map_err(|msg| match vars.get(name) {
        Some(r) => InputError::at(r.span, msg, "not allowed here"),
        None => InputError::plain(format!("{}: {msg}", vars.host)),
    })
}
