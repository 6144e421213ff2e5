//! Rewrites keys of a config file (for `wanctl calibrate`). The result is the same YAML
//! document with the given dotted keys set (created where missing) and others removed;
//! comments are not kept, which the calibrated file's header says. Pure: text in, text out.
//! The output is written by a small block-style emitter here rather than serde_yaml's
//! (libyaml's emitter costs ~160 kB in the static MIPS binary): strings are always
//! double-quoted with JSON escapes, which YAML reads the same way.

use serde_yaml::{Mapping, Value};

/// Sets `set` (dotted keys; whole numbers are written as integers) and removes `remove`.
pub fn patch_yaml(text: &str, set: &[(&str, f64)], remove: &[&str]) -> Result<String, String> {
    let mut doc: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    if !doc.is_mapping() {
        return Err("the document is not a mapping".into());
    }
    for key in remove {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, parents) = parts.split_last().ok_or("empty key")?;
        let mut node = Some(&mut doc);
        for p in parents {
            node = node.and_then(|n| n.get_mut(*p));
        }
        if let Some(m) = node.and_then(Value::as_mapping_mut) {
            m.remove(Value::from(*last));
        }
    }
    for (key, v) in set {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, parents) = parts.split_last().ok_or("empty key")?;
        let mut node = &mut doc;
        for p in parents {
            let m = node.as_mapping_mut().ok_or_else(|| format!("{key}: a parent is not a mapping"))?;
            if !m.contains_key(*p) {
                m.insert(Value::from(*p), Value::Mapping(Mapping::new()));
            }
            node = m.get_mut(*p).ok_or("invariant: just inserted")?;
        }
        let m = node.as_mapping_mut().ok_or_else(|| format!("{key}: the parent is not a mapping"))?;
        let value = if v.fract() == 0.0 && v.abs() < 1e15 { Value::from(*v as i64) } else { Value::from(*v) };
        m.insert(Value::from(*last), value);
    }
    let mut out = String::new();
    emit(&doc, 0, &mut out)?;
    Ok(out)
}

fn scalar(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).map_err(|e| e.to_string())?,
        Value::Tagged(t) => scalar(&t.value)?,
        Value::Sequence(_) | Value::Mapping(_) => return Err("invariant: not a scalar".into()),
    })
}

fn emit(v: &Value, indent: usize, out: &mut String) -> Result<(), String> {
    let pad = " ".repeat(indent);
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                let key = scalar(k)?;
                match val {
                    Value::Mapping(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(val, indent + 2, out)?;
                    }
                    Value::Sequence(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(val, indent + 2, out)?;
                    }
                    Value::Mapping(_) => out.push_str(&format!("{pad}{key}: {{}}\n")),
                    Value::Sequence(_) => out.push_str(&format!("{pad}{key}: []\n")),
                    other => out.push_str(&format!("{pad}{key}: {}\n", scalar(other)?)),
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                match item {
                    Value::Mapping(_) | Value::Sequence(_) => {
                        out.push_str(&format!("{pad}-\n"));
                        emit(item, indent + 2, out)?;
                    }
                    other => out.push_str(&format!("{pad}- {}\n", scalar(other)?)),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other)?)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_creates_and_removes_keys() {
        let text = "a: 1\nb:\n  c: 2\n  d: 3\n";
        let out = patch_yaml(text, &[("b.c", 20.0), ("b.e.f", 1.5)], &["b.d", "x.y"]).expect("patched");
        let v: Value = serde_yaml::from_str(&out).expect("yaml");
        assert_eq!(v["b"]["c"], Value::from(20));
        assert_eq!(v["b"]["e"]["f"], Value::from(1.5));
        assert!(v["b"].get("d").is_none());
        assert_eq!(v["a"], Value::from(1));
        assert!(patch_yaml("- 1\n", &[], &[]).is_err());
        // Round trip of every kind of value through the emitter.
        let text = "s: \"a: b # c\"\nq: 'it''s'\nn: ~\nt: true\nf: 1.5\nl: [1, \"x\", {k: v}]\ne: {}\nm: {z: [], y: {w: -2}}\n";
        let out = patch_yaml(text, &[], &[]).expect("emitted");
        let a: Value = serde_yaml::from_str(text).expect("in");
        let b: Value = serde_yaml::from_str(&out).expect("out");
        assert_eq!(a, b, "{out}");
    }
}
