//! The documentation against the code: docs/deployment.schema.json has the parser's keys and
//! kinds (deployment::shape), every example is valid against it and broken files are not
//! (Python's `jsonschema`, draft 2020-12, which CI installs: .ci/needs.d/h12services.txt; the TOML
//! is turned into JSON by the toml crate here); the README installs first and names only files
//! in the repository.

mod common;

use std::path::PathBuf;

use scc_ports::deployment::shape::{DEPLOYMENT, Field, Shape};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join("docs/deployment.schema.json")).expect("schema");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// Follows a `{"$ref": "#/$defs/x"}` to its definition.
fn resolve<'a>(schema: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/$defs/").expect("local ref");
            &schema["$defs"][name]
        }
        None => v,
    }
}

/// The schema object of `fields` says the same as the parser: the same keys, the same required
/// ones, no others, and each value of the same kind.
fn same_shape(schema: &Value, at: &Value, fields: &[Field], path: &str) {
    let at = resolve(schema, at);
    assert_eq!(at["additionalProperties"], json!(false), "{path}: closed");
    let props = at["properties"].as_object().expect("properties");
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = fields.iter().map(|f| f.key).collect();
    keys.sort_unstable();
    want.sort_unstable();
    assert_eq!(keys, want, "{path}: keys");
    let mut required: Vec<&str> = at["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut want: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.key)
        .collect();
    required.sort_unstable();
    want.sort_unstable();
    assert_eq!(required, want, "{path}: required keys");
    for f in fields {
        let p = resolve(schema, &props[f.key]);
        let here = format!("{path}.{}", f.key);
        match f.shape {
            Shape::Text => assert_eq!(p["type"], "string", "{here}"),
            Shape::Whole => assert_eq!(p["type"], "integer", "{here}"),
            Shape::Bool => assert_eq!(p["type"], "boolean", "{here}"),
            Shape::TextOrWhole => {
                let kinds: Vec<&Value> = p["oneOf"]
                    .as_array()
                    .expect("oneOf")
                    .iter()
                    .map(|o| &o["type"])
                    .collect();
                assert_eq!(kinds, [&json!("integer"), &json!("string")], "{here}");
            }
            Shape::TextOrTexts => text_or_texts(p, &here),
            Shape::ListOf(_) => assert_eq!(p["type"], "array", "{here}"),
            Shape::Table(inner) => same_shape(schema, p, inner, &here),
            Shape::MapOf(Shape::Table(inner)) => {
                assert_eq!(p["type"], "object", "{here}");
                same_shape(
                    schema,
                    &p["additionalProperties"],
                    inner,
                    &format!("{here}.*"),
                );
            }
            Shape::MapOf(Shape::Whole) => {
                let v = resolve(schema, &p["additionalProperties"]);
                assert_eq!(v["type"], "integer", "{here}");
            }
            Shape::MapOf(Shape::Text) => {
                let v = resolve(schema, &p["additionalProperties"]);
                assert_eq!(v["type"], "string", "{here}");
            }
            Shape::MapOf(Shape::TextOrTexts) => {
                text_or_texts(resolve(schema, &p["additionalProperties"]), &here)
            }
            Shape::MapOf(other) => panic!("{here}: no schema rule for {other:?}"),
        }
    }
}

/// A string or a list of strings, in the schema: `oneOf` the two.
fn text_or_texts(v: &Value, here: &str) {
    let kinds: Vec<&Value> = v["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .map(|o| &o["type"])
        .collect();
    assert_eq!(kinds, [&json!("string"), &json!("array")], "{here}");
}

#[test]
fn schema_has_the_parsers_keys_and_kinds() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    same_shape(&s, &s, DEPLOYMENT, "");
}

/// Validates each document; returns one line per document: "valid" or the first error.
fn toml_to_json(text: &str) -> Value {
    let v: toml::Value = toml::from_str(text).expect("TOML");
    serde_json::to_value(v).expect("JSON")
}

#[cfg_attr(
    not(scc_py_jsonschema),
    ignore = "needs the Python module jsonschema (python3-jsonschema)"
)]
#[test]
fn every_example_is_valid_and_broken_files_are_not() {
    let mut docs: Vec<(String, Value)> = Vec::new();
    let examples = common::example_files();
    assert!(examples.len() >= 4, "{examples:?}");
    for p in &examples {
        let text = std::fs::read_to_string(p).unwrap();
        docs.push((format!("{}", p.display()), toml_to_json(&text)));
        // The commented service examples at the end of the templates, uncommented, are valid.
        if let Some(at) = text.find("# [services.rdp]") {
            let open: String = text[at..]
                .lines()
                .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
                .collect::<Vec<_>>()
                .join("\n");
            let doc = toml_to_json(&format!("{}\n{open}\n", &text[..at]));
            assert!(doc["services"]["rdp"].is_object(), "{}", p.display());
            docs.push((format!("{} with its services", p.display()), doc));
        }
    }
    let base =
        toml_to_json(&std::fs::read_to_string(root().join("examples/services.toml")).unwrap());
    let mut excluded = base.clone();
    excluded["nodes"]["APP1"]["windows_excluded_ports"] =
        json!({"tcp": ["50000-50059", "1433"], "udp": [" 5000 - 5099 "]});
    docs.push(("windows_excluded_ports".to_string(), excluded));
    let mut interfaces = base.clone();
    interfaces["nodes"]["APP1"]["interfaces"] =
        json!({"ens192": "datacenter", "ens224": ["admins", "agents"], "bond0.100": "datacenter"});
    docs.push(("interfaces".to_string(), interfaces));
    let valid = docs.len();
    type Edit = fn(&mut Value);
    let broken: [(&str, Edit); 18] = [
        ("interfaces as a list", |d| {
            d["nodes"]["APP1"]["interfaces"] = json!(["ens192"])
        }),
        ("interface name of 16 bytes", |d| {
            d["nodes"]["APP1"]["interfaces"] = json!({"enp0s31f6abcdefg": "datacenter"})
        }),
        ("interface name with a space", |d| {
            d["nodes"]["APP1"]["interfaces"] = json!({"ens 192": "datacenter"})
        }),
        ("interface lo", |d| {
            d["nodes"]["APP1"]["interfaces"] = json!({"lo": "datacenter"})
        }),
        ("interface with no zone", |d| {
            d["nodes"]["APP1"]["interfaces"] = json!({"ens192": []})
        }),
        ("windows_excluded_ports as a list", |d| {
            d["nodes"]["APP1"]["windows_excluded_ports"] = json!(["50000-50059"])
        }),
        ("windows_excluded_ports with sctp", |d| {
            d["nodes"]["APP1"]["windows_excluded_ports"] = json!({"sctp": ["1-2"]})
        }),
        ("unknown top-level key", |d| d["nmae"] = json!("x")),
        ("address as a number", |d| {
            d["nodes"]["APP1"]["address"] = json!(10)
        }),
        ("hac as text", |d| d["nodes"]["DB1"]["hac"] = json!("no")),
        ("node without zone", |d| {
            d["nodes"]["APP1"].as_object_mut().unwrap().remove("zone");
        }),
        ("service from as text", |d| {
            d["services"]["rdp"]["from"] = json!("admins")
        }),
        ("service transport sctp", |d| {
            d["services"]["rdp"]["transport"] = json!("sctp")
        }),
        ("service ports 3389x", |d| {
            d["services"]["rdp"]["ports"] = json!("3389x")
        }),
        ("unknown role", |d| {
            d["zones"]["admins"]["roles"] = json!(["admin"])
        }),
        ("firewall with one zone", |d| {
            d["firewalls"] = json!({"EDGE": {"zones": ["agents"]}})
        }),
        (
            "firewall platform juniper",
            |d| {
                d["firewalls"] =
                    json!({"EDGE": {"zones": ["agents", "datacenter"], "platforms": ["juniper"]}})
            },
        ),
        (
            "firewall appliance name with a space",
            |d| d["firewalls"] = json!({"EDGE": {"zones": ["agents", "datacenter"], "names": {"agents": "in side"}}}),
        ),
    ];
    for (what, edit) in broken {
        let mut d = base.clone();
        edit(&mut d);
        docs.push((what.to_string(), d));
    }
    let schema = root().join("docs/deployment.schema.json");
    let Some(verdicts) = common::jsonschema_verdicts(
        "schema validation test",
        &schema,
        "Draft202012Validator",
        &docs,
    ) else {
        return; // skipped, with the reason printed
    };
    common::assert_first_valid(&docs, &verdicts, valid);
}

/// README: the install step comes before the tour, and every file it names is in the repository
/// (no `../` paths, no links to the workspace).
#[test]
fn readme_installs_first_and_names_only_files_in_the_repository() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let install = readme.find("cargo install --path .").expect("install step");
    let tour = readme.find("## A short tour").expect("tour");
    assert!(install < tour, "the install step must come before the tour");
    assert!(!readme.contains("../"), "a path outside the repository");
    // Every `docs/…`, `examples/…`, `data/…` or `bench/…` path in backticks exists.
    for piece in readme.split('`').skip(1).step_by(2) {
        let path = piece.split_whitespace().next().unwrap_or("");
        if ["docs/", "examples/", "data/", "bench/", "src/", "tests/"]
            .iter()
            .any(|p| path.starts_with(p))
        {
            assert!(
                root().join(path).exists(),
                "README names {path}, which is not in the repository"
            );
        }
    }
}
