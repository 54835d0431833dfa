//! The helper functions rules call (`has_role`, `label`, `changed`, …) and the CEL environment
//! that declares them.

use std::sync::{Arc, LazyLock};

use cel::common::types::{
    CelBool, CelList, CelMap, CelMapKey, CelString, DYN_TYPE, Kind, STRING_TYPE,
};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError};

/// The CEL environment rules run in: the standard library plus the helpers, built once per
/// process (building a standard environment costs tens of microseconds).
pub(crate) fn environment() -> Arc<Env> {
    static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
        let mut env = Env::stdlib();
        let declared = [
            env.add_overload("role_names", "role_names_dyn", vec![DYN_TYPE], role_names),
            env.add_overload(
                "has_role",
                "has_role_dyn_string",
                vec![DYN_TYPE, STRING_TYPE],
                has_role,
            ),
            env.add_overload(
                "workspace_roles",
                "workspace_roles_dyn",
                vec![DYN_TYPE],
                workspace_roles,
            ),
            env.add_overload(
                "has_label",
                "has_label_dyn_string",
                vec![DYN_TYPE, STRING_TYPE],
                has_label,
            ),
            env.add_overload(
                "label",
                "label_dyn_string",
                vec![DYN_TYPE, STRING_TYPE],
                label,
            ),
            env.add_overload(
                "email_domain",
                "email_domain_dyn",
                vec![DYN_TYPE],
                email_domain,
            ),
            env.add_overload(
                "changed",
                "changed_dyn_string",
                vec![DYN_TYPE, STRING_TYPE],
                changed,
            ),
        ];
        for result in declared {
            result.expect("the helpers' names are not standard CEL functions");
        }
        Arc::new(env)
    });
    Arc::clone(&ENV)
}

type HelperResult<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

fn is_null(value: &dyn Val) -> bool {
    value.get_type().kind() == Kind::NullType
}

/// A field of a map value; absent and `null` fields are both `None`.
fn field<'a, 'v>(value: &'a (dyn Val + 'v), key: &'static str) -> Option<&'a (dyn Val + 'v)> {
    let map = value.downcast_ref::<CelMap>()?;
    let key: CelMapKey<'v> = CelMapKey::from(key);
    map.inner()
        .get(&key)
        .map(|v| v.as_ref())
        .filter(|v| !is_null(*v))
}

fn string_field<'a>(value: &'a dyn Val, key: &'static str) -> Option<&'a str> {
    field(value, key)?
        .downcast_ref::<CelString>()
        .map(|s| s.inner())
}

/// The elements of a list field; an absent or `null` field is empty.
fn list_field<'a, 'v>(
    function: &str,
    value: &'a (dyn Val + 'v),
    key: &'static str,
) -> Result<&'a [Box<dyn Val + 'v>], ExecutionError> {
    match field(value, key) {
        None => Ok(&[]),
        Some(list) => list
            .downcast_ref::<CelList>()
            .map(|l| l.inner())
            .ok_or_else(|| {
                ExecutionError::function_error(
                    function,
                    format!("`{key}` is a {}, expected a list", list.get_type().name()),
                )
            }),
    }
}

/// Checks that a helper's subject is a map or null (treated as empty).
fn subject<'a, 'v>(
    function: &str,
    value: &'a (dyn Val + 'v),
    what: &str,
) -> Result<Option<&'a (dyn Val + 'v)>, ExecutionError> {
    if is_null(value) {
        Ok(None)
    } else if value.downcast_ref::<CelMap>().is_some() {
        Ok(Some(value))
    } else {
        Err(ExecutionError::function_error(
            function,
            format!(
                "expected {what} (a map) or null, got a {}",
                value.get_type().name()
            ),
        ))
    }
}

/// The permissions of a user or group body (none for null).
fn permissions<'a, 'v>(
    function: &str,
    value: &'a (dyn Val + 'v),
) -> Result<&'a [Box<dyn Val + 'v>], ExecutionError> {
    match subject(function, value, "a user or group")? {
        None => Ok(&[]),
        Some(body) => list_field(function, body, "permissions"),
    }
}

fn string_arg<'a>(args: &'a [CowVal<'_, '_>], i: usize) -> &'a str {
    // Overload resolution only calls a helper with a string where its signature says so.
    args[i]
        .downcast_ref::<CelString>()
        .map(|s| s.inner())
        .unwrap_or_default()
}

fn string_list<'b, 'v>(items: Vec<String>) -> CowVal<'b, 'v> {
    let items: Vec<Box<dyn Val + 'v>> = items
        .into_iter()
        .map(|s| Box::new(CelString::from(s)) as Box<dyn Val + 'v>)
        .collect();
    CowVal::owned(CelList::from(items))
}

fn role_names<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let names = permissions("role_names", args[0].as_ref())?
        .iter()
        .filter_map(|p| string_field(p.as_ref(), "roleName"))
        .map(str::to_owned)
        .collect();
    Ok(string_list(names))
}

fn has_role<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let role = string_arg(&args, 1);
    let found = permissions("has_role", args[0].as_ref())?
        .iter()
        .any(|p| string_field(p.as_ref(), "roleName") == Some(role));
    Ok(CowVal::owned(CelBool::from(found)))
}

/// Whether a value restricts by labels: a non-empty `labels` list.
fn has_label_restriction(value: &dyn Val) -> bool {
    field(value, "labels").is_some_and(|labels| {
        labels
            .downcast_ref::<CelList>()
            .is_none_or(|l| !l.inner().is_empty())
    })
}

fn workspace_roles<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let mut names: Vec<String> = Vec::new();
    for permission in permissions("workspace_roles", args[0].as_ref())? {
        let permission = permission.as_ref();
        if has_label_restriction(permission) {
            continue;
        }
        let resources = list_field("workspace_roles", permission, "resources")?;
        let whole_workspace = resources.iter().any(|r| {
            string_field(r.as_ref(), "type") == Some("WORKSPACE")
                && !has_label_restriction(r.as_ref())
        });
        if let (true, Some(name)) = (whole_workspace, string_field(permission, "roleName"))
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
    }
    Ok(string_list(names))
}

/// The `value` of the label with this key, `Some("")` for a label without a string value.
fn find_label<'a>(
    function: &str,
    value: &'a dyn Val,
    key: &str,
) -> Result<Option<&'a str>, ExecutionError> {
    let Some(body) = subject(function, value, "a resource")? else {
        return Ok(None);
    };
    Ok(list_field(function, body, "labels")?
        .iter()
        .find(|l| string_field(l.as_ref(), "key") == Some(key))
        .map(|l| string_field(l.as_ref(), "value").unwrap_or_default()))
}

fn has_label<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let found = find_label("has_label", args[0].as_ref(), string_arg(&args, 1))?.is_some();
    Ok(CowVal::owned(CelBool::from(found)))
}

fn label<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let value = find_label("label", args[0].as_ref(), string_arg(&args, 1))?
        .unwrap_or_default()
        .to_owned();
    Ok(CowVal::owned(CelString::from(value)))
}

fn email_domain<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let value = args[0].as_ref();
    let domain = if is_null(value) {
        String::new()
    } else {
        let email = value
            .downcast_ref::<CelString>()
            .ok_or_else(|| {
                ExecutionError::function_error(
                    "email_domain",
                    format!(
                        "expected a string or null, got a {}",
                        value.get_type().name()
                    ),
                )
            })?
            .inner();
        email
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_lowercase())
            .unwrap_or_default()
    };
    Ok(CowVal::owned(CelString::from(domain)))
}

fn changed<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let prefix = string_arg(&args, 1);
    let found = match subject("changed", args[0].as_ref(), "`change`")? {
        None => false,
        Some(change) => list_field("changed", change, "paths")?.iter().any(|p| {
            p.downcast_ref::<CelString>().is_some_and(|p| {
                let path = p.inner();
                path.strip_prefix(prefix).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
                })
            })
        }),
    };
    Ok(CowVal::owned(CelBool::from(found)))
}
