//! Requests checked against a Google API's own description (a Discovery
//! document, such as `../shared/fixtures/google-apis/container.v1.json`):
//! the method and path template with its parameter patterns, the query
//! parameters, and the body against the request schema. What fails is
//! answered as the real service answers, with the real error shape:
//!
//! ```json
//! {"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name \"foo\" at 'cluster': Cannot find field.", "status": "INVALID_ARGUMENT"}}
//! ```
//!
//! Field paths in messages are snake_case, as Google's JSON-to-proto layer
//! writes them (`cluster.node_pools[0].config`).

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde_json::{Value, json};

/// A Google API as its Discovery document describes it.
pub struct Api {
    doc: Value,
    methods: Vec<Method>,
    /// The document's `servicePath` (`compute/v1/`), which every request
    /// path starts with.
    service_path: String,
}

struct Method {
    id: String,
    http_method: String,
    /// The `path` template as a regex, with the parameter names in order.
    path: Regex,
    names: Vec<String>,
    parameters: BTreeMap<String, Value>,
    request: Option<String>,
    /// The template ends in `:verb`.
    custom_verb: bool,
}

/// A request that matched a method.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method's id, such as `container.projects.locations.clusters.create`.
    pub id: String,
    /// Path parameters by name (`parent` → `projects/p/locations/l`).
    pub params: BTreeMap<String, String>,
}

/// An error as Google's APIs send it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub status: String,
    pub message: String,
    /// Extra `details` entries (an ErrorInfo, a Help link).
    pub details: Vec<Value>,
    /// Compute Engine's older shape: no `status`, and an `errors` list
    /// with this `reason` (as in the 404 googleapis/google-cloud-java#11032
    /// quotes: `{"error": {"code", "message", "errors": [{"message",
    /// "domain": "global", "reason": "notFound"}]}}`).
    pub legacy_reason: Option<String>,
}

impl ApiError {
    pub fn new(code: u16, status: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: status.to_string(),
            message: message.into(),
            details: Vec::new(),
            legacy_reason: None,
        }
    }

    /// An error in Compute Engine's shape.
    pub fn legacy(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        let mut error = ApiError::new(code, "", message);
        error.legacy_reason = Some(reason.to_string());
        error
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "INVALID_ARGUMENT", message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        if let Some(reason) = &self.legacy_reason {
            return json!({"error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": reason}]
            }});
        }
        let mut error = json!({"code": self.code, "message": self.message, "status": self.status});
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        json!({ "error": error })
    }
}

impl Api {
    /// Reads a Discovery document.
    pub fn load(path: &Path) -> Result<Api, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("reading {}: {error}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not JSON: {error}", path.display()))?;
        let mut methods = Vec::new();
        collect(&doc["resources"], &mut methods)?;
        let service_path = doc["servicePath"].as_str().unwrap_or_default().to_string();
        Ok(Api {
            doc,
            methods,
            service_path,
        })
    }

    /// How many methods the document describes.
    pub fn method_count(&self) -> usize {
        self.methods.len()
    }

    /// Matches a request (`path` without the host, e.g. `/v1/projects/...`)
    /// to a method and checks it all. The error is what the real service
    /// would answer.
    pub fn check(
        &self,
        http_method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Call, ApiError> {
        let full = path.trim_start_matches('/');
        let not_found = || {
            ApiError::new(
                404,
                "NOT_FOUND",
                format!("The requested URL /{full} was not found on this server."),
            )
        };
        let Some(path) = full.strip_prefix(self.service_path.as_str()) else {
            return Err(not_found());
        };
        let mut path_matched = false;
        // A custom verb (`…/secrets/s:getIamPolicy`) is part of the
        // template in Google's HTTP rules: a template without one does not
        // match a path that has one, even where `{+name}` would take it.
        let has_verb = path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        for method in &self.methods {
            if has_verb && !method.custom_verb {
                continue;
            }
            let Some(captures) = method.path.captures(path) else {
                continue;
            };
            // `v1/{+name}` matches any path: the parameter's pattern
            // decides whether this method is the one.
            let mut params = BTreeMap::new();
            let mut fits = true;
            for (index, name) in method.names.iter().enumerate() {
                let value = captures.get(index + 1).map_or("", |m| m.as_str());
                if let Some(pattern) = method
                    .parameters
                    .get(name)
                    .and_then(|p| p["pattern"].as_str())
                {
                    let regex = Regex::new(pattern).map_err(|error| {
                        ApiError::new(500, "INTERNAL", format!("pattern {pattern}: {error}"))
                    })?;
                    fits &= regex.is_match(value);
                }
                params.insert(name.clone(), value.to_string());
            }
            if !fits {
                continue;
            }
            path_matched = true;
            if !method.http_method.eq_ignore_ascii_case(http_method) {
                continue;
            }
            for (name, value) in query {
                let spec = method
                    .parameters
                    .get(name)
                    .filter(|spec| spec["location"] == "query")
                    .or_else(|| self.doc["parameters"].get(name.as_str()));
                let Some(spec) = spec else {
                    return Err(ApiError::invalid(format!(
                        "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. Field '{name}' could not be found in request message."
                    )));
                };
                check_scalar(spec, &Value::String(value.clone()), name, true)?;
            }
            match (&method.request, body) {
                (Some(schema), Some(body)) => {
                    self.check_value(&json!({"$ref": schema}), body, "")?;
                }
                (None, Some(body)) if body != &json!({}) && !body.is_null() => {
                    return Err(ApiError::invalid(format!(
                        "Invalid JSON payload received. {} takes no body",
                        method.id
                    )));
                }
                _ => {}
            }
            return Ok(Call {
                id: method.id.clone(),
                params,
            });
        }
        if path_matched {
            Err(ApiError::new(
                405,
                "METHOD_NOT_ALLOWED",
                format!("{http_method} is not allowed on /{path}"),
            ))
        } else {
            Err(not_found())
        }
    }

    fn schema(&self, name: &str) -> Result<&Value, ApiError> {
        self.doc["schemas"]
            .get(name)
            .ok_or_else(|| ApiError::new(500, "INTERNAL", format!("no schema {name}")))
    }

    /// Checks `value` against `spec` (a schema or a property); `at` is the
    /// snake_case path for messages.
    fn check_value(&self, spec: &Value, value: &Value, at: &str) -> Result<(), ApiError> {
        if let Some(name) = spec["$ref"].as_str() {
            let schema = self.schema(name)?;
            return self.check_value(schema, value, at);
        }
        match spec["type"].as_str() {
            Some("object") => {
                let Some(map) = value.as_object() else {
                    return Err(invalid_value(at, "TYPE_MESSAGE", value));
                };
                if let Some(properties) = spec["properties"].as_object() {
                    for (key, item) in map {
                        let Some(property) = properties.get(key) else {
                            let place = if at.is_empty() {
                                String::new()
                            } else {
                                format!(" at '{at}'")
                            };
                            return Err(ApiError::invalid(format!(
                                "Invalid JSON payload received. Unknown name \"{key}\"{place}: Cannot find field."
                            )));
                        };
                        self.check_value(property, item, &join(at, &snake(key)))?;
                    }
                } else if let Some(values) = spec.get("additionalProperties") {
                    for (key, item) in map {
                        self.check_value(values, item, &format!("{at}[{key}]"))?;
                    }
                }
                Ok(())
            }
            Some("array") => {
                let Some(items) = value.as_array() else {
                    return Err(invalid_value(at, "TYPE_MESSAGE", value));
                };
                for (index, item) in items.iter().enumerate() {
                    self.check_value(&spec["items"], item, &format!("{at}[{index}]"))?;
                }
                Ok(())
            }
            Some("any") | None => Ok(()),
            Some(_) => check_scalar(spec, value, at, false),
        }
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// `nodePools` → `node_pools`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn invalid_value(at: &str, kind: &str, value: &Value) -> ApiError {
    ApiError::invalid(format!(
        "Invalid value at '{at}' ({kind}), {}",
        match value {
            Value::String(text) => format!("\"{text}\""),
            other => other.to_string(),
        }
    ))
}

/// A string, integer, number or boolean, with its enum. Query parameters
/// arrive as text (`from_query`), so their numbers and booleans are read
/// from it.
fn check_scalar(spec: &Value, value: &Value, at: &str, from_query: bool) -> Result<(), ApiError> {
    let text = value.as_str();
    let ok = match spec["type"].as_str() {
        Some("string") => match spec["format"].as_str() {
            // int64 and uint64 travel as strings, or as numbers.
            Some("int64" | "uint64") => {
                value.is_i64() || value.is_u64() || text.is_some_and(|t| t.parse::<i128>().is_ok())
            }
            _ => value.is_string(),
        },
        Some("integer") => {
            value.is_i64() || value.is_u64() || text.is_some_and(|t| t.parse::<i64>().is_ok())
        }
        Some("number") => value.is_number() || text.is_some_and(|t| t.parse::<f64>().is_ok()),
        Some("boolean") => {
            value.is_boolean() || (from_query && matches!(text, Some("true" | "false")))
        }
        _ => true,
    };
    let kind = match spec["type"].as_str() {
        Some("integer") => "TYPE_INT32",
        Some("number") => "TYPE_DOUBLE",
        Some("boolean") => "TYPE_BOOL",
        _ if spec.get("enum").is_some() => "TYPE_ENUM",
        _ => "TYPE_STRING",
    };
    if !ok {
        return Err(invalid_value(at, kind, value));
    }
    if let (Some(allowed), Some(text)) = (spec["enum"].as_array(), text)
        && !allowed.iter().any(|a| a.as_str() == Some(text))
    {
        return Err(invalid_value(at, "TYPE_ENUM", value));
    }
    Ok(())
}

/// Every method under `resources`, recursively.
fn collect(resources: &Value, methods: &mut Vec<Method>) -> Result<(), String> {
    let Some(resources) = resources.as_object() else {
        return Ok(());
    };
    for resource in resources.values() {
        if let Some(found) = resource["methods"].as_object() {
            for method in found.values() {
                methods.push(method_of(method)?);
            }
        }
        collect(&resource["resources"], methods)?;
    }
    Ok(())
}

fn method_of(method: &Value) -> Result<Method, String> {
    let id = method["id"].as_str().unwrap_or_default().to_string();
    let template = method["path"].as_str().unwrap_or_default();
    // `{+name}` expands to text with slashes (reserved expansion); `{name}`
    // to one segment.
    let variable = Regex::new(r"\{(\+?)([A-Za-z0-9_]+)\}").map_err(|e| e.to_string())?;
    let mut pattern = String::from("^");
    let mut names = Vec::new();
    let mut last = 0;
    for captures in variable.captures_iter(template) {
        let whole = captures.get(0).ok_or("no match")?;
        pattern.push_str(&regex::escape(&template[last..whole.start()]));
        pattern.push_str(if &captures[1] == "+" {
            "(.+?)"
        } else {
            "([^/:]+)"
        });
        names.push(captures[2].to_string());
        last = whole.end();
    }
    pattern.push_str(&regex::escape(&template[last..]));
    pattern.push('$');
    Ok(Method {
        id: id.clone(),
        http_method: method["httpMethod"].as_str().unwrap_or("GET").to_string(),
        path: Regex::new(&pattern).map_err(|error| format!("{id}: {error}"))?,
        names,
        parameters: method["parameters"]
            .as_object()
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        request: method["request"]["$ref"].as_str().map(str::to_string),
        custom_verb: template
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':')),
    })
}
