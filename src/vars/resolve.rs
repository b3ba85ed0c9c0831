//! Per-host var resolution: merge the layers, then render templates lazily.
//!
//! A var's template may read other vars (`"{{ registry_host }}:5000"`), in any order; each var is
//! rendered on first use, cycles are errors, and a template that reads a secret var produces a
//! secret. A template that is a single expression (`"{{ ports }}"`) keeps its type, as in Ansible.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, Value as JValue};
use minijinja::{Environment, value::Serde};
use serde_json::Value as Json;

use super::secret::{self, Redactor};
use super::template::is_template;
use super::{Layer, Ranked, merge};
use crate::error::InputError;
use crate::source::Span;
use crate::yaml::{Node, Value};

/// One resolved var.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The value after template rendering.
    pub value: Json,
    /// Whether it must be redacted.
    pub secret: bool,
    /// Where the winning definition is written.
    pub span: Span,
    /// Index of the precedence layer the value came from (higher wins).
    pub rank: usize,
    /// Set when the value could not be rendered and is kept as written: only a var provision
    /// never reads may stay unrendered, as Ansible renders a var only when a task uses it.
    pub note: Option<String>,
}

/// Every var of one host, resolved.
#[derive(Debug, Clone)]
pub struct HostVars {
    /// Inventory name of the host.
    pub host: String,
    /// Groups the host belongs to (lowest precedence first), without `all`/`ungrouped`.
    pub groups: Vec<String>,
    /// Vars by name, in definition order.
    pub vars: IndexMap<String, Resolved>,
}

impl HostVars {
    /// The resolved var, if set.
    pub fn get(&self, name: &str) -> Option<&Resolved> {
        self.vars.get(name)
    }

    /// A boolean var (types are checked when vars are loaded), if set.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(|r| r.value.as_bool())
    }

    /// A string var, if set.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|r| r.value.as_str())
    }

    /// Vars as JSON with secrets replaced by `***` (at any depth), for printing.
    pub fn redacted_json(&self) -> serde_json::Map<String, Json> {
        self.vars
            .iter()
            .map(|(k, r)| (k.clone(), if r.secret { Json::String(secret::MASK.into()) } else { secret::redact_json(&r.value) }))
            .collect()
    }
}

/// What the caller knows about one host: its name, groups and the layers that apply to it,
/// lowest precedence first, plus the magic vars (`inventory_hostname`, `groups`, ...).
#[derive(Debug, Clone)]
pub struct HostInput {
    /// Inventory name.
    pub host: String,
    /// Groups without `all`/`ungrouped`, lowest precedence first.
    pub groups: Vec<String>,
    /// Var layers, lowest precedence first.
    pub layers: Vec<Layer>,
    /// Read-only vars Ansible defines for every host.
    pub magic: IndexMap<String, Json>,
}

/// Resolves every var of a host. Secret values are registered with the [`Redactor`]. A var for
/// which `strict` is false and whose template cannot be rendered (an Ansible loop var, a filter
/// plugin, a fact) is kept as written with a note instead of failing: Ansible only renders what
/// a task uses.
pub fn resolve_host(input: HostInput, env: &Environment<'static>, strict: &dyn Fn(&str) -> bool) -> Result<HostVars, InputError> {
    let raw = merge(&input.layers);
    let scope = Arc::new(Scope { raw, magic: input.magic, env: env.clone(), state: Mutex::new(State::default()) });
    let names: Vec<String> = scope.raw.keys().cloned().collect();
    let mut vars = IndexMap::new();
    for name in names {
        let r = match scope.resolve(&name) {
            Ok(r) => r,
            Err(e) if !strict(&name) => {
                let (node, rank) = &scope.raw[&name];
                Resolved {
                    value: node.to_json(),
                    secret: secret::is_secret_node(&name, node),
                    span: node.span,
                    rank: *rank,
                    note: Some(e.message().to_string()),
                }
            }
            Err(e) => return Err(e),
        };
        if r.secret {
            Redactor::add_json(&r.value);
        }
        vars.insert(name, r);
    }
    Ok(HostVars { host: input.host, groups: input.groups, vars })
}

#[derive(Default)]
struct State {
    done: HashMap<String, Resolved>,
    /// Vars being rendered, innermost last, with whether they read a secret so far.
    stack: Vec<(String, bool)>,
    /// First error raised inside a nested lookup; minijinja only sees "undefined".
    error: Option<InputError>,
}

struct Scope {
    raw: Ranked,
    magic: IndexMap<String, Json>,
    env: Environment<'static>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("vars")
    }
}

impl Scope {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("var scope poisoned")
    }

    fn resolve(self: &Arc<Self>, name: &str) -> Result<Resolved, InputError> {
        let (node, rank) = &self.raw[name];
        {
            let mut st = self.lock();
            if let Some(r) = st.done.get(name).cloned() {
                return Ok(r);
            }
            if let Some(pos) = st.stack.iter().position(|(n, _)| n == name) {
                let chain: Vec<String> = st.stack[pos..].iter().map(|(n, _)| n.clone()).chain([name.to_string()]).collect();
                return Err(InputError::at(
                    node.span,
                    format!("vars refer to each other in a loop: {}", chain.join(" -> ")),
                    "this var depends on itself",
                ));
            }
            st.stack.push((name.to_string(), false));
        }
        let rendered = self.render_node(node);
        let tainted = self.lock().stack.pop().is_some_and(|(_, t)| t);
        let value = rendered?;
        let secret = tainted || secret::is_secret_node(name, node);
        let r = Resolved { value, secret, span: node.span, rank: *rank, note: None };
        self.lock().done.insert(name.to_string(), r.clone());
        Ok(r)
    }

    fn render_node(self: &Arc<Self>, node: &Node) -> Result<Json, InputError> {
        Ok(match &node.value {
            Value::Str(s) if node.tag.as_deref() == Some(secret::VAULT_TAG) => Json::String(
                super::vault::decrypt(s, &node.span.location()).map_err(|e| InputError::at(node.span, e.to_string(), "vault value"))?,
            ),
            Value::Str(s) if is_template(s) => self.render_str(s, node.span)?,
            Value::Seq(items) => Json::Array(items.iter().map(|n| self.render_inner("", n)).collect::<Result<_, _>>()?),
            Value::Map(entries) => Json::Object(
                entries.iter().map(|(k, v)| Ok((k.name.clone(), self.render_inner(&k.name, v)?))).collect::<Result<_, InputError>>()?,
            ),
            _ => node.to_json(),
        })
    }

    /// Renders a value nested in a list or mapping; one that is tagged `!secret` or sits under a
    /// secret-named key is registered with the redactor, whatever its depth.
    fn render_inner(self: &Arc<Self>, key: &str, node: &Node) -> Result<Json, InputError> {
        let v = self.render_node(node)?;
        if secret::is_secret_node(key, node) {
            Redactor::add_json(&v);
        }
        Ok(v)
    }

    fn render_str(self: &Arc<Self>, s: &str, span: Span) -> Result<Json, InputError> {
        let ctx = JValue::from_dyn_object(self.clone());
        let outer_read = super::template::take_secret_read();
        let result = match single_expression(&self.env, s) {
            Some(expr) => match self.env.compile_expression(expr).and_then(|e| e.eval(ctx.clone())) {
                // Expressions yield undefined instead of failing; rendering the string instead
                // produces minijinja's own "`x` is undefined" error.
                Ok(v) if contains_undefined(&v) => self.env.render_str(s, ctx).and_then(|_| {
                    let what = match self.undefined_names(s).as_slice() {
                        [] => "an undefined value".to_string(),
                        names => format!("undefined variable `{}`", names.join("`, `")),
                    };
                    Err(minijinja::Error::new(minijinja::ErrorKind::UndefinedError, format!("`{expr}` uses {what}")))
                }),
                Ok(v) => Ok(serde_json::to_value(&v).unwrap_or(Json::Null)),
                Err(e) => Err(e),
            },
            None => self.env.render_str(s, ctx).map(Json::String),
        };
        // A value read through env() or file() is a secret: it was kept out of the repo for a reason.
        if super::template::take_secret_read()
            && let Some(top) = self.lock().stack.last_mut()
        {
            top.1 = true;
        }
        if outer_read {
            super::template::mark_secret_read();
        }
        // A failed nested lookup (a loop, a bad template in another var) is the real cause,
        // whether or not minijinja itself failed.
        if let Some(inner) = self.lock().error.take() {
            return Err(inner);
        }
        result.map_err(|e| {
            let detail = e.detail().map_or_else(|| e.kind().to_string(), str::to_string);
            let label = if e.kind() == minijinja::ErrorKind::UndefinedError { "undefined variable" } else { "template error" };
            InputError::at(span, format!("template error: {detail}"), label)
                .with_help("variables come from the inventory, group_vars/, host_vars/ and -e; use `| default(...)` for optional ones")
        })
    }
}

impl Scope {
    /// The variables a template reads that no layer, magic var or global defines.
    fn undefined_names(&self, s: &str) -> Vec<String> {
        let Ok(t) = self.env.template_from_str(s) else { return Vec::new() };
        let mut names: Vec<String> = t
            .undeclared_variables(false)
            .into_iter()
            .filter(|n| !self.raw.contains_key(n) && !self.magic.contains_key(n) && self.env.globals().all(|(g, _)| g != n.as_str()))
            .collect();
        names.sort();
        names
    }
}

fn contains_undefined(v: &JValue) -> bool {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Undefined => true,
        ValueKind::Seq => v.try_iter().into_iter().flatten().any(|i| contains_undefined(&i)),
        ValueKind::Map => v.try_iter().into_iter().flatten().any(|k| v.get_item(&k).is_ok_and(|i| contains_undefined(&i))),
        _ => false,
    }
}

/// `"{{ expr }}"` with nothing around it: evaluated as an expression so lists and numbers keep
/// their type. The inner text must compile as one expression (a dict literal may contain `}}`).
fn single_expression<'a>(env: &Environment<'static>, s: &'a str) -> Option<&'a str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (!inner.contains("{%") && env.compile_expression(inner).is_ok()).then_some(inner)
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = key.as_str()?;
        if self.raw.contains_key(name) {
            return match self.resolve(name) {
                Ok(r) => {
                    if r.secret
                        && let Some(top) = self.lock().stack.last_mut()
                    {
                        top.1 = true;
                    }
                    Some(JValue::from(Serde(&r.value)))
                }
                Err(e) => {
                    self.lock().error.get_or_insert(e);
                    None
                }
            };
        }
        self.magic.get(name).map(|v| JValue::from(Serde(v)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<JValue> = self.raw.keys().chain(self.magic.keys()).map(|k| JValue::from(k.as_str())).collect();
        Enumerator::Values(keys)
    }
}
