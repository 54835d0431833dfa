//! Writing the [path syntax](super#paths): one object key or one array selector at a time.

/// Appends `.key`, or `["key"]` for a key that is not a plain identifier.
pub(super) fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key != "$"
        && !key.chars().any(|c| {
            matches!(c, '.' | '[' | ']' | '"' | '\\') || c.is_whitespace() || c.is_control()
        });
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        push_json_string(path, key);
        path.push(']');
    }
}

/// Appends `[field=value]`, quoting the value when it would be ambiguous or unreadable bare.
pub(super) fn push_selector(path: &mut String, field: &str, value: &str) {
    path.push('[');
    path.push_str(field);
    path.push('=');
    let bare = !value.is_empty()
        && !value.starts_with(char::is_whitespace)
        && !value.ends_with(char::is_whitespace)
        && !value
            .chars()
            .any(|c| matches!(c, '[' | ']' | '"' | '\\') || c.is_control());
    if bare {
        path.push_str(value);
    } else {
        push_json_string(path, value);
    }
    path.push(']');
}

fn push_json_string(path: &mut String, s: &str) {
    path.push_str(&serde_json::to_string(s).expect("a string serialises"));
}
