//! `discover`: the manifest written from the backups in the bucket. Every
//! object under the prefixes is listed and its header read (the same
//! bounded ranged reads as `plan`), files are grouped by media set, and for
//! each source database the newest complete full backup is chosen; the
//! rest is left out, each with its rule code. The base manifest's text is
//! kept as written, with the chosen databases appended.

use crate::backup::stripes::StripeSet;
use crate::backup::{BackupHeader, Guid, HeaderError, verdict};
use crate::import_path::Method;
use crate::manifest::{self, Env, Loaded, Purpose, Rejected};
use crate::rules::{Finding, Rule};
use crate::s3::{Listed, S3, S3Error};
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Objects read at once.
const CONCURRENCY: usize = 32;

/// How diagnostics about the written manifest name it.
const WRITTEN: &str = "the written manifest";

/// The default `--name-template`.
pub const DEFAULT_TEMPLATE: &str = "{database}";

pub struct DiscoverRequest<'a> {
    /// The base manifest.
    pub base: &'a Path,
    pub prefixes: Vec<String>,
    /// The instance (a key of the base's `instances`) the databases go to.
    pub instance: String,
    /// Written into each entry when given; else the base's default applies.
    pub method: Option<Method>,
    /// `{database}` and `{server}` are replaced.
    pub name_template: String,
    pub tags: Vec<String>,
    pub env: Env<'a>,
}

/// One database chosen: its newest complete full backup.
#[derive(Debug, Clone, Serialize)]
pub struct Chosen {
    /// The target name, from the template.
    pub name: String,
    pub instance: String,
    /// Every stripe, in stripe order.
    pub files: Vec<String>,
    pub source_server: String,
    pub source_database: String,
    pub backup_start: Option<String>,
    /// Bytes of data in the backup.
    pub backup_size: u64,
    /// Bytes in the bucket, all stripes.
    pub stored_size: u64,
    pub source_version: String,
    pub database_version: u16,
    pub compressed: bool,
    /// Warnings the backup rules found (a compressed container not read, ...).
    pub warnings: Vec<Finding>,
}

/// Objects left out, with why.
#[derive(Debug, Clone, Serialize)]
pub struct LeftOut {
    /// The source database, when the header could be read.
    pub database: Option<String>,
    pub server: Option<String>,
    /// The objects (one, or the stripes of one backup).
    pub keys: Vec<String>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
pub struct Discovered {
    pub chosen: Vec<Chosen>,
    pub left_out: Vec<LeftOut>,
    /// Objects listed under the prefixes.
    pub objects: usize,
    /// The base with the chosen databases and the left-out comments
    /// appended; the manifest to write.
    #[serde(skip)]
    pub manifest: String,
    /// The written manifest loaded again, when it names any database: its
    /// warnings (names that need delimiting, ...).
    #[serde(skip)]
    pub checked: Option<Result<Loaded, Box<Rejected>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("the base manifest is not valid")]
    Base(Box<Rejected>),
    #[error("there is no instance `{instance}` in the base manifest{}", hint.as_ref().map(|h| format!("; did you mean `{h}`?")).unwrap_or_default())]
    NoSuchInstance {
        instance: String,
        hint: Option<String>,
    },
    #[error(
        "--name-template `{0}` names neither `{{database}}` nor `{{server}}`: every database would get one name"
    )]
    Template(String),
    #[error(transparent)]
    Timeout(#[from] crate::http::TimeoutError),
    #[error(transparent)]
    S3Setup(#[from] crate::s3::SetupError),
    #[error("cannot list the prefix `{prefix}`: {error}")]
    Listing { prefix: String, error: S3Error },
}

/// Lists, reads, groups and chooses; composes the manifest.
pub async fn discover(request: DiscoverRequest<'_>) -> Result<Discovered, DiscoverError> {
    let (loaded, text) = manifest::load_for(request.base, request.env, Purpose::Base)
        .map_err(|r| DiscoverError::Base(Box::new(r)))?;
    if !loaded.manifest.instances.contains_key(&request.instance) {
        let names: Vec<String> = loaded.manifest.instances.keys().cloned().collect();
        return Err(DiscoverError::NoSuchInstance {
            hint: manifest::structure::closest(&request.instance, &names),
            instance: request.instance,
        });
    }
    let template = &request.name_template;
    if !template.contains("{database}") && !template.contains("{server}") {
        return Err(DiscoverError::Template(template.clone()));
    }
    let http = crate::http::client(crate::http::timeout(request.env)?);
    let s3 = S3::new(&loaded.valid.s3, http)?;

    let mut objects: Vec<Listed> = Vec::new();
    let mut seen = HashSet::new();
    for prefix in &request.prefixes {
        let listed = s3
            .list(prefix)
            .await
            .map_err(|error| DiscoverError::Listing {
                prefix: prefix.clone(),
                error,
            })?;
        objects.extend(listed.into_iter().filter(|o| seen.insert(o.key.clone())));
    }
    let count = objects.len();
    let mut left_out = Vec::new();
    let readable: Vec<Listed> = objects
        .into_iter()
        .filter_map(|o| match manifest::model::check_key(&o.key) {
            Ok(()) => Some(o),
            Err(e) => {
                left_out.push(LeftOut {
                    database: None,
                    server: None,
                    keys: vec![o.key],
                    findings: vec![Finding::new(Rule::Unusable, e.to_string())],
                });
                None
            }
        })
        .collect();
    let reads: Vec<Object> = futures::stream::iter(readable)
        .map(|o| read(&s3, o))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let chosen = choose(reads, &request, &loaded, &mut left_out);
    let manifest = compose(&text, &chosen, &left_out, &request);
    let checked = (!loaded.manifest.databases.is_empty() || !chosen.is_empty()).then(|| {
        manifest::load_str(WRITTEN, &manifest, &loaded.dir, request.env).map_err(Box::new)
    });
    Ok(Discovered {
        chosen,
        left_out,
        objects: count,
        manifest,
        checked,
    })
}

/// One object as read.
struct Object {
    key: String,
    size: u64,
    header: Result<Result<BackupHeader, HeaderError>, S3Error>,
}

async fn read(s3: &S3, o: Listed) -> Object {
    let size = match o.size {
        Some(size) => Ok(size),
        None => s3.head(&o.key).await,
    };
    let header = match &size {
        Ok(size) => s3.read_backup_sized(&o.key, *size).await,
        Err(e) => Err(e.clone()),
    };
    let size = size.ok();
    Object {
        key: o.key,
        size: size.unwrap_or(0),
        header,
    }
}

/// An object whose header was read, as the backup rules take it (the
/// header moved in, never copied).
struct Grouped {
    key: String,
    size: u64,
    header: Result<BackupHeader, HeaderError>,
}

/// Groups by media set, judges each set with the backup rules, and keeps
/// the newest complete full backup of each source database.
fn choose(
    reads: Vec<Object>,
    request: &DiscoverRequest<'_>,
    loaded: &Loaded,
    left_out: &mut Vec<LeftOut>,
) -> Vec<Chosen> {
    // Media sets: the stripes read, by media set id.
    let mut sets: BTreeMap<Guid, Vec<Grouped>> = BTreeMap::new();
    for o in reads {
        match o.header {
            Ok(Ok(h)) => {
                sets.entry(h.media_set_id).or_default().push(Grouped {
                    key: o.key,
                    size: o.size,
                    header: Ok(h),
                });
            }
            Ok(Err(e)) => {
                let finding = match e {
                    HeaderError::Compressed(e) => Finding::new(
                        Rule::CompressedUnreadable,
                        format!(
                            "compressed in a container this tool does not read ({e}); its \
                             database cannot be told, so it is not chosen"
                        ),
                    ),
                    other => {
                        // The backup rules say what kind of not-a-backup it is
                        // (damaged, cut short, not a backup at all).
                        let header = Err(other.clone());
                        let reads = [verdict::Read {
                            key: &o.key,
                            size: o.size,
                            header: &header,
                        }];
                        let (_, findings) = verdict::assess(&reads);
                        findings
                            .into_iter()
                            .next()
                            .unwrap_or_else(|| Finding::new(Rule::NotABackup, other.to_string()))
                    }
                };
                left_out.push(LeftOut {
                    database: None,
                    server: None,
                    keys: vec![o.key],
                    findings: vec![finding],
                });
            }
            Err(e) => left_out.push(LeftOut {
                database: None,
                server: None,
                keys: vec![o.key.clone()],
                findings: vec![Finding::new(e.rule(), e.to_string())],
            }),
        }
    }

    // Every complete, importable full backup, by source database.
    let mut candidates: BTreeMap<(String, String), Vec<Chosen>> = BTreeMap::new();
    for (_, members) in sets {
        let reads: Vec<verdict::Read<'_>> = members
            .iter()
            .map(|g| verdict::Read {
                key: &g.key,
                size: g.size,
                header: &g.header,
            })
            .collect();
        let (stripe_set, findings) = verdict::assess(&reads);
        let first = members[0]
            .header
            .as_ref()
            .expect("grouped headers were read");
        let (refusals, warnings): (Vec<Finding>, Vec<Finding>) =
            findings.into_iter().partition(Finding::refuses);
        let keys: Vec<String> = members.iter().map(|g| g.key.clone()).collect();
        match stripe_set {
            Some(stripe_set) if refusals.is_empty() => {
                let source = (first.server_name.clone(), first.database_name.clone());
                candidates.entry(source).or_default().push(chosen(
                    &stripe_set,
                    first,
                    &members,
                    warnings,
                    request,
                ));
            }
            _ => left_out.push(LeftOut {
                database: Some(first.database_name.clone()),
                server: Some(first.server_name.clone()),
                keys,
                findings: if refusals.is_empty() {
                    warnings
                } else {
                    refusals
                },
            }),
        }
    }

    // The newest of each source; the older ones are listed.
    let mut picked: Vec<Chosen> = Vec::new();
    for ((server, database), mut list) in candidates {
        list.sort_by(|a, b| {
            b.backup_start
                .cmp(&a.backup_start)
                .then_with(|| b.files.cmp(&a.files))
        });
        let mut list = list.into_iter();
        let newest = list.next().expect("a candidate");
        for older in list {
            left_out.push(LeftOut {
                database: Some(database.clone()),
                server: Some(server.clone()),
                findings: vec![Finding::new(
                    Rule::Superseded,
                    format!(
                        "a full backup of {} is older than the one chosen ({})",
                        older.backup_start.as_deref().unwrap_or("an unknown date"),
                        newest.backup_start.as_deref().unwrap_or("an unknown date")
                    ),
                )],
                keys: older.files,
            });
        }
        picked.push(newest);
    }

    // Names: valid, not named in the base already, not taken twice.
    let named: HashSet<String> = loaded
        .manifest
        .databases
        .iter()
        .filter(|db| db.instance == request.instance)
        .map(|db| db.name.to_lowercase())
        .collect();
    let mut by_name: HashMap<String, Vec<Chosen>> = HashMap::new();
    for c in picked {
        by_name.entry(c.name.to_lowercase()).or_default().push(c);
    }
    let mut out = Vec::new();
    for (key, group) in by_name {
        if group.len() > 1 {
            let sources: Vec<String> = group
                .iter()
                .map(|c| format!("{} on {}", c.source_database, c.source_server))
                .collect();
            for c in group {
                left_out.push(LeftOut {
                    database: Some(c.source_database.clone()),
                    server: Some(c.source_server.clone()),
                    findings: vec![Finding::new(
                        Rule::NameCollision,
                        format!(
                            "`{}` is the name of {} sources ({}); add `{{server}}` to \
                             --name-template",
                            c.name,
                            sources.len(),
                            sources.join(", ")
                        ),
                    )],
                    keys: c.files,
                });
            }
            continue;
        }
        let c = group.into_iter().next().expect("one");
        let problem = if named.contains(&key) {
            Some(Finding::new(
                Rule::AlreadyNamed,
                format!(
                    "the base manifest names `{}` on instance `{}` already",
                    c.name, request.instance
                ),
            ))
        } else {
            crate::names::check_database_name(&c.name)
                .err()
                .map(|e| Finding::new(Rule::Unusable, format!("`{}`: {e}", c.name)))
        };
        match problem {
            Some(finding) => left_out.push(LeftOut {
                database: Some(c.source_database.clone()),
                server: Some(c.source_server.clone()),
                findings: vec![finding],
                keys: c.files,
            }),
            None => out.push(c),
        }
    }
    out.sort_by_key(|c| c.name.to_lowercase());
    left_out
        .sort_by(|a, b| (&a.server, &a.database, &a.keys).cmp(&(&b.server, &b.database, &b.keys)));
    out
}

fn chosen(
    set: &StripeSet,
    first: &BackupHeader,
    members: &[Grouped],
    warnings: Vec<Finding>,
    request: &DiscoverRequest<'_>,
) -> Chosen {
    Chosen {
        name: request
            .name_template
            .replace("{database}", &first.database_name)
            .replace("{server}", &first.server_name),
        instance: request.instance.clone(),
        files: set.files_in_order.clone(),
        source_server: first.server_name.clone(),
        source_database: first.database_name.clone(),
        backup_start: first.backup_start.clone(),
        backup_size: first.backup_size,
        stored_size: members.iter().map(|o| o.size).sum(),
        source_version: first.source_version.to_owned(),
        database_version: first.database_version,
        compressed: first.compressed,
        warnings,
    }
}

/// The base's text with the chosen databases appended to its `databases`
/// list (made when it has none), and what was left out as comments at the
/// end. Values are written as double-quoted YAML strings; comments are one
/// line each, with control characters escaped.
fn compose(
    base: &str,
    chosen: &[Chosen],
    left_out: &[LeftOut],
    request: &DiscoverRequest<'_>,
) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string");
    let line = |s: &str| crate::redact::terminal(s).replace(['\r', '\n'], " ");
    let (mut text, at, indent) = insertion_point(base);
    let pad = " ".repeat(indent);
    let mut entries = String::new();
    for c in chosen {
        entries.push_str(&format!(
            "{pad}# {}: {} on {}, full backup of {}, {} in {} file{}, {} (database version {}){}\n",
            line(&c.name),
            line(&c.source_database),
            line(&c.source_server),
            c.backup_start.as_deref().unwrap_or("an unknown date"),
            crate::plan::human_size(c.stored_size),
            c.files.len(),
            if c.files.len() == 1 { "" } else { "s" },
            c.source_version,
            c.database_version,
            if c.compressed { ", compressed" } else { "" },
        ));
        entries.push_str(&format!("{pad}- name: {}\n", quote(&c.name)));
        entries.push_str(&format!("{pad}  instance: {}\n", quote(&c.instance)));
        if let Some(method) = request.method {
            entries.push_str(&format!("{pad}  method: {}\n", method.as_str()));
        }
        entries.push_str(&format!("{pad}  files:\n"));
        for f in &c.files {
            entries.push_str(&format!("{pad}    - {}\n", quote(f)));
        }
        if !request.tags.is_empty() {
            let tags: Vec<String> = request.tags.iter().map(|t| quote(t)).collect();
            entries.push_str(&format!("{pad}  tags: [{}]\n", tags.join(", ")));
        }
    }
    text.insert_str(at, &entries);
    if !left_out.is_empty() {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# Left out by discover:\n");
        for l in left_out {
            let who = match (&l.database, &l.server) {
                (Some(d), Some(s)) => format!("{} on {}", line(d), line(s)),
                _ => "not a backup of a database".to_owned(),
            };
            for f in &l.findings {
                text.push_str(&format!(
                    "#   {who}: {}: {}: {}\n",
                    l.keys
                        .iter()
                        .map(|k| line(k))
                        .collect::<Vec<_>>()
                        .join(", "),
                    f.code,
                    line(&f.message)
                ));
            }
        }
    }
    text
}

/// Where entries go in `base`: the text (with an empty flow list removed
/// or a `databases:` key added), the byte offset, and the indentation of
/// the list's items.
fn insertion_point(base: &str) -> (String, usize, usize) {
    use manifest::yaml::Node;
    let mut text = base.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let Ok(tree) = manifest::yaml::parse(&text) else {
        // The base loaded, so it parses; should it not, the list goes last.
        text.push_str("databases:\n");
        let at = text.len();
        return (text, at, 2);
    };
    match tree.get("databases").map(|e| &e.value) {
        None => {
            text.push_str("databases:\n");
            let at = text.len();
            (text, at, 2)
        }
        Some(Node::Scalar(s)) if s.plain && s.text.is_empty() => {
            // `databases:` with nothing after it: the entries follow its line.
            let key_end = tree.get("databases").expect("there").key_span.end;
            let at = text[key_end..]
                .find('\n')
                .map_or(text.len(), |n| key_end + n + 1);
            (text, at, 2)
        }
        Some(Node::Seq(items, span)) if items.is_empty() => {
            // `databases: []` (or `databases:` with nothing): the entries
            // take the place of the empty list, as a block list.
            let (start, end) = (span.start, span.end);
            let mut rest = text.split_off(start);
            rest.replace_range(..end - start, "");
            let rest = rest.trim_start_matches([' ', '\t']).to_owned();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let at = text.len();
            let tail = rest.strip_prefix('\n').unwrap_or(&rest);
            text.push_str(tail);
            (text, at, 2)
        }
        Some(Node::Seq(items, _)) => {
            let last = items.last().expect("not empty").span();
            let indent = items.first().map_or(2, |i| i.span().col.saturating_sub(2));
            // After the list's last item, on a line of its own.
            let mut at = last.end;
            if !text[..at].ends_with('\n') {
                match text[at..].find('\n') {
                    Some(n) => at += n + 1,
                    None => {
                        text.push('\n');
                        at = text.len();
                    }
                }
            }
            (text, at, indent)
        }
        Some(_) => {
            // Not a list: the manifest would not have loaded as a base.
            let at = text.len();
            (text, at, 2)
        }
    }
}
