//! `provision inventory`: the resolved hosts, groups and vars, secrets redacted.

use serde_json::{Map, Value as Json, json};

use crate::cli::{Format, Global, InventoryArgs};
use crate::error::{InputError, Result};
use crate::inventory::{ALL, Inventory};
use crate::output;

/// Runs the command.
pub fn run(g: &Global, args: &InventoryArgs) -> Result<i32> {
    let project = super::load_project(g)?;
    let inv = &project.inventory;
    let names = match &args.host {
        Some(h) if !inv.hosts.contains_key(h) => {
            let mut e = InputError::plain(format!("no host `{h}` in the inventory"));
            if let Some(s) = crate::inventory::did_you_mean(h, inv.hosts.keys().map(String::as_str)) {
                e = e.with_help(format!("did you mean `{s}`?"));
            }
            return Err(e.into());
        }
        Some(h) => vec![h.clone()],
        None => project.select(g.limit.as_deref())?,
    };
    let hosts = project.resolve(&names)?;
    let mut host_docs = Map::new();
    for h in &hosts {
        let mut doc = json!({ "groups": h.vars.groups, "vars": h.vars.redacted_json() });
        // Values only Ansible's roles can render are shown as written, with why.
        let notes: Map<String, Json> = h
            .vars
            .vars
            .iter()
            .filter_map(|(k, r)| r.note.as_ref().map(|n| (k.clone(), Json::String(crate::vars::secret::Redactor::redact(n)))))
            .collect();
        if !notes.is_empty() {
            doc["unrendered"] = Json::Object(notes);
        }
        host_docs.insert(h.vars.host.clone(), doc);
    }
    let doc = if args.host.is_some() {
        host_docs.into_iter().next().map(|(_, v)| v).unwrap_or(Json::Null)
    } else {
        json!({ "groups": groups_doc(inv), "hosts": host_docs })
    };
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&doc).expect("JSON of JSON") + "\n",
        Format::Human => serde_saphyr::to_string(&doc).map_err(|e| crate::error::Error::Other(e.to_string()))?,
    };
    output::out(&text);
    Ok(0)
}

fn groups_doc(inv: &Inventory) -> Json {
    let mut groups = Map::new();
    for g in inv.groups.values() {
        // `ungrouped` is noise unless something is in it.
        if g.name == crate::inventory::UNGROUPED && g.hosts.is_empty() {
            continue;
        }
        let mut doc = Map::new();
        if g.name != ALL {
            doc.insert("hosts".into(), json!(inv.group_hosts(&g.name)));
        }
        if !g.children.is_empty() {
            doc.insert("children".into(), json!(g.children));
        }
        groups.insert(g.name.clone(), Json::Object(doc));
    }
    Json::Object(groups)
}
