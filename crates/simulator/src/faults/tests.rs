//! Unit tests of fault specs (parsing, display, serde form) and of fault selection.

use super::*;

fn parse(s: &str) -> Fault {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn error(s: &str) -> String {
    match s.parse::<Fault>() {
        Ok(f) => panic!("`{s}` parsed as {f:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn client_errors_on_one_query_parameter() {
    let f = parse("422,path=/functions,query=resourceType=INSERT_SOURCE");
    assert_eq!(
        f,
        Fault::new(FaultKind::ClientError { status: 422 })
            .on_path("/functions")
            .on_query("resourceType=INSERT_SOURCE")
    );
    assert_eq!(parse(&f.to_string()), f);
    assert!(f.matches_query("resourceType=INSERT_SOURCE&pagination%5Bcount%5D=200"));
    assert!(!f.matches_query("resourceType=SOURCE&pagination%5Bcount%5D=200"));
    assert!(!f.matches_query(""));
    let mut set = FaultSet::new(vec![f]);
    assert_eq!(set.select("/functions", "resourceType=SOURCE", true), None);
    assert_eq!(
        set.select("/functions", "resourceType=INSERT_SOURCE", true),
        Some(FaultKind::ClientError { status: 422 })
    );
    assert!(error("401").contains("not a server error"));
    assert!(error("500,query=resourceType").contains("NAME=VALUE"));
}

#[test]
fn parses_good_specs() {
    assert_eq!(
        parse("endless-body,path=/users"),
        Fault::new(FaultKind::EndlessBody).on_path("/users")
    );
    assert_eq!(
        parse("trickle:ms=50"),
        Fault::new(FaultKind::Trickle { interval_ms: 50 })
    );
    assert_eq!(
        parse("trickle"),
        Fault::new(FaultKind::Trickle { interval_ms: 1000 })
    );
    assert_eq!(
        parse("429:ms=2000,path=/users,skip=1,times=3"),
        Fault::new(FaultKind::RateLimited {
            ms_before_next: 2000
        })
        .on_path("/users")
        .skip(1)
        .times(3)
    );
    assert_eq!(
        parse("500"),
        Fault::new(FaultKind::ServerError { status: 500 })
    );
    assert_eq!(
        parse("503,times=2"),
        Fault::new(FaultKind::ServerError { status: 503 }).times(2)
    );
    assert_eq!(
        parse("error:status=502"),
        Fault::new(FaultKind::ServerError { status: 502 })
    );
    assert_eq!(
        parse("slow:ms=3000"),
        Fault::new(FaultKind::Slow { delay_ms: 3000 })
    );
    assert_eq!(
        parse("slow"),
        Fault::new(FaultKind::Slow { delay_ms: 1000 })
    );
    assert_eq!(
        parse("malformed,path=/sources"),
        Fault::new(FaultKind::MalformedJson).on_path("/sources")
    );
    assert_eq!(
        parse("endless-cursor:repeat"),
        Fault::new(FaultKind::EndlessCursor { repeat: true })
    );
    assert_eq!(
        parse("endless"),
        Fault::new(FaultKind::EndlessCursor { repeat: false })
    );
    assert_eq!(
        parse(" Rate-Limited , ms = 5 "),
        Fault::new(FaultKind::RateLimited { ms_before_next: 5 })
    );
}

#[test]
fn parses_races_and_malformed_records() {
    assert_eq!(
        parse("race:delete,path=/users"),
        Fault::race(RaceAction::Delete, "/users")
    );
    assert_eq!(
        parse("race:insert,path=/destinations,times=3"),
        Fault::new(FaultKind::PaginationRace {
            action: RaceAction::Insert
        })
        .on_path("/destinations")
        .times(3)
    );
    assert_eq!(
        parse("bad-item:no-id,path=/users"),
        Fault::new(FaultKind::BadItem {
            shape: BadItemShape::NoId
        })
        .on_path("/users")
    );
    for (spec, shape) in [
        ("bad-item:null-id", BadItemShape::NullId),
        ("bad-item:not-object", BadItemShape::NotObject),
        ("BAD-ITEM:All", BadItemShape::All),
    ] {
        assert_eq!(parse(spec).kind, FaultKind::BadItem { shape }, "{spec}");
    }
    assert_eq!(
        parse("bad-event:timestamp"),
        Fault::new(FaultKind::BadEvent {
            defect: BadEventDefect::TimestampNotADate
        })
        .on_path("/audit-events")
    );
    assert_eq!(
        parse("bad-event:no-timestamp,times=1").kind,
        FaultKind::BadEvent {
            defect: BadEventDefect::NoTimestamp
        }
    );
    let json = serde_json::to_value(parse("race:delete,path=/users")).unwrap();
    assert_eq!(
        json["kind"],
        serde_json::json!({"type": "pagination_race", "action": "delete"})
    );
    for (spec, expected) in [
        (
            "race,path=/users",
            "`race` needs a variant: `race:delete|insert`",
        ),
        ("race:delete", "`race` needs `path=/users`"),
        (
            "race:delete,path=/sources",
            "`race` works on /users and /destinations only",
        ),
        (
            "race:explode,path=/users",
            "unknown `race` variant `explode`",
        ),
        (
            "race:delete,path=/users,ms=3",
            "`ms` does not apply to `race`",
        ),
        (
            "bad-item:weird",
            "expected one of no-id, null-id, not-object, all",
        ),
        ("bad-event", "`bad-event` needs a variant"),
    ] {
        let message = error(spec);
        assert!(
            message.contains(expected),
            "`{spec}`: `{message}` lacks `{expected}`"
        );
    }
}

#[test]
fn races_fire_on_later_pages_of_their_listing_only() {
    let mut set = FaultSet::new(vec![
        Fault::race(RaceAction::Delete, "/users"),
        Fault::new(FaultKind::BadItem {
            shape: BadItemShape::NoId,
        })
        .on_path("/sources"),
    ]);
    let race = Some(FaultKind::PaginationRace {
        action: RaceAction::Delete,
    });
    assert_eq!(set.select_page("/users", "", true, false), None);
    assert_eq!(set.select_page("/users/u1", "", false, false), None);
    assert_eq!(set.select_page("/users", "", true, true), race);
    // Once by default.
    assert_eq!(set.select_page("/users", "", true, true), None);
    assert_eq!(set.select_page("/sources/s1", "", false, false), None);
    assert!(set.select_page("/sources", "", true, false).is_some());
}

#[test]
fn display_round_trips() {
    for spec in [
        "429:ms=2000,path=/users,skip=1,times=3",
        "500",
        "504,path=/groups",
        "slow:ms=3000",
        "malformed,path=/sources",
        "endless-cursor:repeat",
        "endless-cursor,times=1",
        "race:delete,path=/users,times=1",
        "race:insert,path=/destinations,skip=1,times=2",
        "bad-item:no-id,path=/users",
        "bad-item:all",
        "bad-event:timestamp,path=/audit-events",
        "bad-event:no-timestamp,path=/audit-events,times=1",
        "endless-body,path=/users",
        "trickle:ms=50,path=/users,times=2",
    ] {
        let fault = parse(spec);
        assert_eq!(fault.to_string(), spec);
        assert_eq!(parse(&fault.to_string()), fault);
    }
}

#[test]
fn rejects_bad_specs_clearly() {
    let cases = [
        ("", "empty spec"),
        ("404", "not a server error"),
        ("error:status=429", "use `429`"),
        ("teapot", "unknown fault kind `teapot`"),
        ("429:ms=soon", "`ms` must be a non-negative integer"),
        ("429:ms=-1", "`ms` must be a non-negative integer"),
        ("429,ms", "`ms` needs a value"),
        ("slow,repeat", "`repeat` does not apply to `slow`"),
        ("500,ms=3", "`ms` does not apply to `500`"),
        ("malformed,path=sources", "`path` must start with `/`"),
        ("500,times=0", "`times` must be at least 1"),
        ("500,skip=1,skip=2", "`skip` given twice"),
        ("500,,times=1", "empty parameter"),
        ("500,color=red", "unknown parameter `color`"),
        ("endless:repeat=maybe", "`repeat` is a flag"),
        ("endless-body:ms=5", "`ms` does not apply to `endless-body`"),
        ("trickle:ms=0", "`trickle` needs `ms` of at least 1"),
        ("trickle,status=500", "`status` does not apply to `trickle`"),
    ];
    for (spec, expected) in cases {
        let message = error(spec);
        assert!(
            message.contains(expected),
            "`{spec}`: `{message}` lacks `{expected}`"
        );
        assert!(message.contains("invalid fault spec"), "{message}");
    }
}

#[test]
fn serde_form_is_tagged() {
    let fault = Fault::new(FaultKind::RateLimited { ms_before_next: 7 }).on_path("/users");
    let json = serde_json::to_value(&fault).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": {"type": "rate_limited", "ms_before_next": 7},
                           "path": "/users", "skip": 0, "times": null})
    );
    let back: Fault =
        serde_json::from_str(r#"{"kind":{"type":"malformed_json"},"times":2}"#).unwrap();
    assert_eq!(back, Fault::new(FaultKind::MalformedJson).times(2));
}

#[test]
fn path_matching_is_segment_wise() {
    let f = Fault::new(FaultKind::MalformedJson).on_path("/users");
    assert!(f.matches_path("/users"));
    assert!(f.matches_path("/users/abc"));
    assert!(!f.matches_path("/usersx"));
    assert!(!f.matches_path("/groups/x/users"));
    assert!(Fault::new(FaultKind::MalformedJson).matches_path("/anything"));
    assert!(
        Fault::new(FaultKind::MalformedJson)
            .on_path("/")
            .matches_path("/roles")
    );
    assert!(
        Fault::new(FaultKind::MalformedJson)
            .on_path("/groups/")
            .matches_path("/groups/g1/users")
    );
}

#[test]
fn selection_honours_order_skip_and_times() {
    let mut set = FaultSet::new(vec![
        Fault::new(FaultKind::ServerError { status: 500 })
            .on_path("/users")
            .skip(1)
            .times(2),
        Fault::new(FaultKind::EndlessCursor { repeat: false }).on_path("/sources"),
        Fault::new(FaultKind::Slow { delay_ms: 1 }).times(1),
    ]);
    let err = Some(FaultKind::ServerError { status: 500 });
    // First /users request is skipped by the 500 and falls through to the slow fault.
    assert_eq!(
        set.select("/users", "", true),
        Some(FaultKind::Slow { delay_ms: 1 })
    );
    assert_eq!(set.select("/users", "", true), err);
    assert_eq!(set.select("/users/u1", "", false), err);
    assert_eq!(set.select("/users", "", true), None);
    // Endless cursor only applies to paginated lists.
    assert_eq!(set.select("/sources/s1", "", false), None);
    assert_eq!(
        set.select("/sources", "", true),
        Some(FaultKind::EndlessCursor { repeat: false })
    );
    set.clear();
    assert_eq!(set.select("/sources", "", true), None);
}
