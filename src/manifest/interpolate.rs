//! `${VAR}` and `${VAR:-default}` in manifest values, resolved from the
//! environment. `$$` is a literal `$`; a `$` not followed by `{` stays as it is,
//! so passwords with a dollar sign need no escaping unless they contain `${`.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error("environment variable `{0}` is not set")]
    Unset(String),
    #[error("`${{` without a closing `}}`")]
    Unclosed,
    #[error(
        "`{0}` is not a valid environment variable name (letters, digits and `_`, not starting with a digit)"
    )]
    BadName(String),
}

/// Replaces every reference in `text`. All unset variables are reported, not
/// just the first, so one run of `validate` names them all.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<InterpolateError>> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                errors.push(InterpolateError::Unclosed);
                return Err(errors);
            };
            let expr = &body[..close];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            if !is_var_name(name) {
                errors.push(InterpolateError::BadName(name.to_owned()));
            } else {
                match (lookup(name).filter(|v| !v.is_empty()), default) {
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => errors.push(InterpolateError::Unset(name.to_owned())),
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Whether `text` is exactly one `${...}` reference and nothing else.
/// Whether `text` names a variable that `lookup` has set (non-empty).
pub fn names_a_set_variable(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    text.split("${").skip(1).any(|part| {
        let expr = part.split('}').next().unwrap_or_default();
        let name = expr.split(":-").next().unwrap_or_default();
        is_var_name(name) && lookup(name).is_some_and(|v| !v.is_empty())
    })
}

pub fn is_single_reference(text: &str) -> bool {
    let t = text.trim();
    t.starts_with("${")
        && t.ends_with('}')
        && t.matches("${").count() == 1
        && t.matches('}').count() == 1
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("alice".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn resolves_references_defaults_and_escapes() {
        assert_eq!(interpolate("${USER}@x", &env).unwrap(), "alice@x");
        assert_eq!(interpolate("${NOPE:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(interpolate("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(
            interpolate("$$HOME pa$word", &env).unwrap(),
            "$HOME pa$word"
        );
    }

    #[test]
    fn names_every_unset_variable() {
        let errors = interpolate("${A}/${USER}/${B}", &env).unwrap_err();
        assert_eq!(
            errors,
            vec![
                InterpolateError::Unset("A".into()),
                InterpolateError::Unset("B".into())
            ]
        );
    }

    #[test]
    fn rejects_malformed_references() {
        assert_eq!(
            interpolate("${A", &env).unwrap_err(),
            vec![InterpolateError::Unclosed]
        );
        assert_eq!(
            interpolate("${1A}", &env).unwrap_err(),
            vec![InterpolateError::BadName("1A".into())]
        );
    }
}
