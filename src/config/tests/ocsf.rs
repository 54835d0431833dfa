//! `ocsf` sinks: a file or a collector, never both, and keys that belong to the other.

use super::*;

use segwatch_sinks::SinkTarget;
use segwatch_sinks::ocsf::OcsfTarget;
use segwatch_sinks::ocsf::http::HttpFormat;

fn sink(body: &str) -> Result<Vec<segwatch_sinks::SinkConfig>, ConfigError> {
    load(
        &format!("[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"siem\"\ntype = \"ocsf\"\n{body}"),
        &[],
    )
    .unwrap()
    .sinks()
}

#[test]
fn a_file_sink_has_rotation_defaults_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("findings.ocsf.jsonl");
    let sinks = sink(&format!("path = \"{}\"\n", path.display())).unwrap();
    let SinkTarget::Ocsf(OcsfTarget::File(file)) = &sinks[0].target else {
        panic!("a file target");
    };
    assert_eq!(
        (&file.path, file.max_file_bytes, file.max_files),
        (&path, 100 * 1024 * 1024, 5)
    );
    let small = sink(&format!(
        "path = \"{}\"\nmax_file_bytes = 65536\nmax_body_bytes = 32768\nmax_files = 2\n",
        path.display()
    ))
    .unwrap();
    assert_eq!(small[0].max_message_bytes, 32768);
}

#[test]
fn a_collector_sink_reads_its_token_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("hec-token");
    std::fs::write(&token, "hec-token-5150\n").unwrap();
    let sinks = sink(&format!(
        "url = \"https://splunk.example.com:8088/services/collector/event\"\n\
         format = \"splunk-hec\"\ntoken_file = \"{}\"\n",
        token.display()
    ))
    .unwrap();
    let SinkTarget::Ocsf(OcsfTarget::Http(http)) = &sinks[0].target else {
        panic!("a collector target");
    };
    assert_eq!(http.format, HttpFormat::SplunkHec);
    let debug = format!("{:?}", sinks[0]);
    assert!(!debug.contains("hec-token-5150"), "{debug}");
    assert!(!debug.contains("splunk.example.com"), "{debug}");
}

#[test]
fn bad_ocsf_sinks_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.jsonl");
    let file = format!("path = \"{}\"\n", path.display());
    let url = "url = \"https://collector.example.com/ocsf\"\n";
    for (body, needles) in [
        (
            "".to_owned(),
            &["`sinks.path`", "sink `siem`", "needs `path`"][..],
        ),
        (format!("{file}{url}"), &["`sinks.path`", "not both"][..]),
        (
            "path = \"/no/such/folder/f.jsonl\"\n".to_owned(),
            &["`sinks.path`", "/no/such/folder does not exist"][..],
        ),
        (
            format!("{file}max_file_bytes = 1000\n"),
            &["`sinks.max_file_bytes`", "out of range"][..],
        ),
        (
            format!("{file}max_file_bytes = 65536\n"),
            &["`sinks.max_body_bytes`", "larger than `max_file_bytes`"][..],
        ),
        (
            format!("{file}max_files = 0\n"),
            &["`sinks.max_files`", "out of range"][..],
        ),
        (
            format!("{file}format = \"splunk-hec\"\n"),
            &["`sinks.format`", "not to a file"][..],
        ),
        (
            format!("{url}max_files = 3\n"),
            &["`sinks.max_files`", "not to a collector"][..],
        ),
        (
            format!("{url}format = \"splunk-hec\"\n"),
            &["`sinks.token`", "needs the HEC token"][..],
        ),
        (
            format!("{url}format = \"gelf\"\n"),
            &["`sinks.format`", "`gelf` is not a format"][..],
        ),
        (
            "url = \"http://collector.example.com/ocsf\"\n".to_owned(),
            &["`sinks.url`", "allow_insecure_http"][..],
        ),
        (
            format!("{url}secret = \"k\"\n"),
            &["`sinks.secret`", "is not signed"][..],
        ),
    ] {
        let err = sink(&body).unwrap_err().to_string();
        for needle in needles {
            assert!(err.contains(needle), "{body}: {err}");
        }
    }
    // The keys of an ocsf sink mean nothing to another type.
    let err = load(
        "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\n\
         url = \"https://example.com/h\"\ntoken = \"x\"\n",
        &[],
    )
    .unwrap()
    .sinks()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`sinks.token`") && err.contains("only to an `ocsf` sink"),
        "{err}"
    );
}
