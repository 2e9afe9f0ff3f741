//! Reading zone files strictly, with `FILE:LINE` for every problem.
//!
//! hickory's master-file parser reports errors without line numbers and silently
//! accepts things a mature server refuses (records outside the zone, a line with no
//! type, `@` in RDATA rejected while BIND accepts it). So we split the file into
//! entries ourselves (comments, quotes, parentheses, `$ORIGIN`, `$TTL`, `$INCLUDE`),
//! hand each record to hickory's parser on its own so an error lands on its line,
//! and then run the semantic checks that BIND, NSD and Knot run before serving.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncodable;
use hickory_server::proto::serialize::txt::Parser;

/// Where a record or a problem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) file: String,
    pub(crate) line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One thing wrong with a zone, printed as `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub(crate) struct Problem {
    pub(crate) at: Location,
    pub(crate) message: String,
}

/// The text of a zone and where it came from. `path` is `None` for the copy built
/// into the binary; `$INCLUDE` then has nothing to be relative to and is refused.
#[derive(Debug, Clone)]
pub(crate) struct ZoneSource {
    pub(crate) display: String,
    pub(crate) path: Option<PathBuf>,
    pub(crate) text: String,
}

impl ZoneSource {
    pub(crate) fn from_path(path: &Path) -> Result<Self, Problem> {
        let text = read_zone_text(path).map_err(|reason| Problem {
            at: Location {
                file: path.display().to_string(),
                line: 0,
            },
            message: format!("cannot read zone file: {reason}"),
        })?;
        Ok(Self {
            display: path.display().to_string(),
            path: Some(path.to_path_buf()),
            text,
        })
    }
}

/// The largest zone file (or `$INCLUDE`d file) read: far above any zone onebox is
/// meant for, and a bound on the memory one file can take.
const MAX_ZONE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a zone file's text, refusing anything that is not a regular file under
/// [`MAX_ZONE_FILE_BYTES`]. `/dev/zero` would grow memory without end, and a FIFO
/// would block the reload (and shutdown behind it) until someone writes to it:
/// the file is opened non-blocking, so a FIFO cannot stall the open, and checked on
/// the open descriptor, so a file swapped in after a check is caught too.
fn read_zone_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io_reason(&e))?;
    let meta = file.metadata().map_err(|e| io_reason(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let too_big = || format!("larger than {} MB", MAX_ZONE_FILE_BYTES / (1024 * 1024));
    if meta.len() > MAX_ZONE_FILE_BYTES {
        return Err(too_big());
    }
    // A file that grows while we read it is still capped.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_ZONE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_reason(&e))?;
    if bytes.len() as u64 > MAX_ZONE_FILE_BYTES {
        return Err(too_big());
    }
    // The reason never quotes the bytes: they may be anything.
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

/// A zone that passed every check, ready to be served.
#[derive(Debug, Clone)]
pub(crate) struct ParsedZone {
    pub(crate) origin: Name,
    pub(crate) serial: u32,
    pub(crate) records: Vec<(Record, Location)>,
    /// The main file and every `$INCLUDE`d one, watched for changes.
    pub(crate) files: Vec<PathBuf>,
    /// A hash of all the zone's text, to tell "changed" from "touched".
    pub(crate) digest: u64,
    /// Things worth saying that do not stop the zone from loading.
    pub(crate) warnings: Vec<Problem>,
}

/// Reads and checks one zone. Either every check passes or every problem found is
/// returned, so `onebox check` can list them all at once.
pub(crate) fn parse_zone(source: &ZoneSource) -> Result<ParsedZone, Vec<Problem>> {
    let default_origin = source
        .path
        .as_deref()
        .and_then(origin_from_file_name)
        .unwrap_or_else(Name::root);
    // `$INCLUDE` stays inside the folder of the zone file being read, as NSD's
    // chroot keeps it inside its zones folder.
    let root = source
        .path
        .as_deref()
        .and_then(Path::parent)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        })
        .and_then(|dir| dir.canonicalize().ok());
    let mut reader = Reader {
        root,
        problems: Vec::new(),
        records: Vec::new(),
        files: Vec::new(),
        hasher: std::collections::hash_map::DefaultHasher::new(),
        last_owner: None,
        last_ttl: None,
        default_ttl: None,
    };
    reader.read_file(source, default_origin.clone(), 0);
    let Reader {
        mut problems,
        records,
        files,
        hasher,
        ..
    } = reader;
    let mut warnings = Vec::new();
    let first_line = Location {
        file: source.display.clone(),
        line: 1,
    };

    // The SOA says where the zone's apex is; there must be exactly one.
    let soas: Vec<&(Record, Location)> = records
        .iter()
        .filter(|(r, _)| r.record_type() == RecordType::SOA)
        .collect();
    let Some((soa_record, _)) = soas.first().copied() else {
        if problems.is_empty() {
            problems.push(Problem {
                at: first_line,
                message: "no SOA record: a zone starts with an SOA at its apex".into(),
            });
        }
        return Err(problems);
    };
    for (extra, at) in soas.iter().skip(1) {
        problems.push(Problem {
            at: at.clone(),
            message: format!(
                "a second SOA record (at {}): a zone has exactly one, at its apex",
                extra.name
            ),
        });
    }
    let origin = soa_record.name.to_lowercase();
    let RData::SOA(soa) = &soa_record.data else {
        unreachable!("an SOA record holds SOA data")
    };
    let serial = soa.serial;
    if default_origin != Name::root() && default_origin.to_lowercase() != origin {
        warnings.push(Problem {
            at: first_line.clone(),
            message: format!(
                "the file is named for {default_origin} but its SOA is at {origin}; serving {origin}"
            ),
        });
    }

    // What lives at each name, to check the rules between records.
    let mut by_owner: HashMap<LowerName, Vec<(RecordType, &Location)>> = HashMap::new();
    for (record, at) in &records {
        if !origin.zone_of(&record.name) {
            problems.push(Problem {
                at: at.clone(),
                message: format!(
                    "{} is outside the zone {origin}: a zone file holds only names at or below its apex",
                    record.name
                ),
            });
            continue;
        }
        if record.record_type() == RecordType::SOA && record.name.to_lowercase() != origin {
            continue; // reported above as a second SOA
        }
        by_owner
            .entry(LowerName::from(&record.name))
            .or_default()
            .push((record.record_type(), at));
    }
    let apex = LowerName::from(&origin);
    if !by_owner
        .get(&apex)
        .is_some_and(|types| types.iter().any(|(t, _)| *t == RecordType::NS))
    {
        problems.push(Problem {
            at: soas[0].1.clone(),
            message: format!("no NS record at the apex {origin}: a zone must name its servers"),
        });
    }
    for (owner, types) in &by_owner {
        let cnames: Vec<&&Location> = types
            .iter()
            .filter(|(t, _)| *t == RecordType::CNAME)
            .map(|(_, at)| at)
            .collect();
        let Some(first_cname) = cnames.first() else {
            continue;
        };
        if *owner == apex {
            problems.push(Problem {
                at: (**first_cname).clone(),
                message: format!(
                    "CNAME at the zone apex {origin}: the apex must hold the SOA and NS records, and a CNAME cannot share its name (RFC 1034 §3.6.2)"
                ),
            });
            continue;
        }
        for extra in cnames.iter().skip(1) {
            problems.push(Problem {
                at: (**extra).clone(),
                message: format!(
                    "{owner} has more than one CNAME: an alias points to exactly one name"
                ),
            });
        }
        for (rtype, at) in types {
            if matches!(
                rtype,
                RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC
            ) {
                continue;
            }
            problems.push(Problem {
                at: (*at).clone(),
                message: format!(
                    "{owner} has a CNAME (line {}) and {rtype} data: a CNAME must be the only record at its name (RFC 1034 §3.6.2)",
                    first_cname.line
                ),
            });
        }
    }

    // Records of one RRset share one TTL (RFC 2181 §5.2); BIND warns and uses the first.
    let mut rrset_ttl: HashMap<(LowerName, RecordType), u32> = HashMap::new();
    for (record, at) in &records {
        let key = (LowerName::from(&record.name), record.record_type());
        match rrset_ttl.get(&key) {
            Some(&ttl) if ttl != record.ttl => warnings.push(Problem {
                at: at.clone(),
                message: format!(
                    "TTL {} differs from {ttl} earlier in the same RRset ({} {}); all records of an RRset share one TTL (RFC 2181 §5.2)",
                    record.ttl,
                    record.name,
                    record.record_type()
                ),
            }),
            Some(_) => {}
            None => {
                rrset_ttl.insert(key, record.ttl);
            }
        }
    }

    if !problems.is_empty() {
        problems
            .sort_by(|a, b| (a.at.file.as_str(), a.at.line).cmp(&(b.at.file.as_str(), b.at.line)));
        problems.dedup();
        return Err(problems);
    }
    Ok(ParsedZone {
        origin,
        serial,
        records,
        files,
        digest: hasher.finish(),
        warnings,
    })
}

/// `zones/foobar.com.zone` names the zone `foobar.com.`: the default `$ORIGIN`
/// (and `internet/root.zone` the root zone, ".").
fn origin_from_file_name(path: &Path) -> Option<Name> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".zone").unwrap_or(name);
    if stem == "root" {
        // BIND's name for the root zone's file: `root.zone` is the zone ".".
        return Some(Name::root());
    }
    let mut origin = Name::from_ascii(stem).ok()?;
    origin.set_fqdn(true);
    Some(origin)
}

fn io_reason(err: &std::io::Error) -> String {
    // "No such file or directory (os error 2)" reads better without the number.
    let text = err.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text.to_lowercase(),
    }
}

/// RFC 2181 §8: TTLs are unsigned 31-bit values.
const MAX_TTL: u64 = 2_147_483_647;
const MAX_INCLUDE_DEPTH: usize = 8;
/// What a problem in an `$INCLUDE`d file says instead of quoting it.
const UNQUOTED: &str =
    "not valid zone data (the text of an included file is not repeated in messages)";

struct Reader {
    /// The zones folder, resolved: every `$INCLUDE` must land inside it.
    root: Option<PathBuf>,
    problems: Vec<Problem>,
    records: Vec<(Record, Location)>,
    files: Vec<PathBuf>,
    hasher: std::collections::hash_map::DefaultHasher,
    last_owner: Option<Name>,
    last_ttl: Option<u32>,
    default_ttl: Option<u32>,
}

impl Reader {
    fn problem(&mut self, file: &str, line: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            at: Location {
                file: file.to_string(),
                line,
            },
            message: message.into(),
        });
    }

    fn read_file(&mut self, source: &ZoneSource, mut origin: Name, depth: usize) {
        source.text.hash(&mut self.hasher);
        if let Some(path) = &source.path {
            self.files.push(path.clone());
        }
        let file = source.display.as_str();
        // A zone file is the operator's, and quoting it helps. An `$INCLUDE`d file
        // may be anything the include names, so its text is never repeated in a
        // message (logs, `onebox check`); the line number says where to look.
        let quote = depth == 0;
        let report = |reader: &mut Self, line: usize, message: String| {
            if quote {
                reader.problem(file, line, message);
            } else {
                reader.problem(file, line, UNQUOTED);
            }
        };
        let entries = match split_entries(&source.text) {
            Ok(entries) => entries,
            Err((line, message)) => {
                self.problem(file, line, message);
                return;
            }
        };
        for entry in entries {
            let line = entry.line;
            let first = entry.tokens[0].text.as_str();
            if !entry.starts_blank && first.starts_with('$') {
                let args: Vec<&str> = entry.tokens[1..].iter().map(|t| t.text.as_str()).collect();
                match first.to_ascii_uppercase().as_str() {
                    "$ORIGIN" => match args.as_slice() {
                        [name] => match Name::parse(name, Some(&origin)) {
                            Ok(mut name) => {
                                name.set_fqdn(true);
                                origin = name;
                            }
                            Err(e) => report(self, line, format!("bad $ORIGIN {name}: {e}")),
                        },
                        _ => self.problem(file, line, "$ORIGIN takes exactly one name"),
                    },
                    "$TTL" => match args.as_slice() {
                        [ttl] => match parse_ttl(ttl) {
                            Ok(ttl) => self.default_ttl = Some(ttl),
                            Err(message) => report(self, line, message),
                        },
                        _ => self.problem(file, line, "$TTL takes exactly one value"),
                    },
                    "$INCLUDE" => self.include(source, &origin, line, &args, depth),
                    other => report(
                        self,
                        line,
                        format!(
                            "unsupported directive {other} (onebox reads $ORIGIN, $TTL and $INCLUDE)"
                        ),
                    ),
                }
                continue;
            }
            if let Err(message) = self.record(&entry, &origin, file) {
                report(self, line, message);
            }
        }
    }

    fn include(
        &mut self,
        parent: &ZoneSource,
        origin: &Name,
        line: usize,
        args: &[&str],
        depth: usize,
    ) {
        let file = parent.display.as_str();
        let (target, new_origin) = match args {
            [target] => (*target, origin.clone()),
            [target, name] => match Name::parse(name, Some(origin)) {
                Ok(mut name) => {
                    name.set_fqdn(true);
                    (*target, name)
                }
                Err(e) => {
                    return self.problem(file, line, format!("bad $INCLUDE origin {name}: {e}"));
                }
            },
            _ => {
                return self.problem(
                    file,
                    line,
                    "$INCLUDE takes a file name and an optional origin",
                );
            }
        };
        let Some(parent_path) = &parent.path else {
            return self.problem(file, line, "$INCLUDE is not available in the built-in zone");
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return self.problem(
                file,
                line,
                format!("$INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)"),
            );
        }
        // Relative to the including file's folder, as BIND and hickory do.
        let path = parent_path.parent().unwrap_or(Path::new(".")).join(target);
        let resolved = match path.canonicalize() {
            Ok(resolved) => resolved,
            Err(e) => {
                return self.problem(
                    file,
                    line,
                    format!(
                        "cannot read $INCLUDE file {}: {}",
                        path.display(),
                        io_reason(&e)
                    ),
                );
            }
        };
        // Resolved first, so neither `..` nor a symlink can lead out of the folder.
        // A folder that cannot be resolved contains nothing: fail closed.
        if !self
            .root
            .as_ref()
            .is_some_and(|root| resolved.starts_with(root))
        {
            let message = format!(
                "$INCLUDE file {} is outside the zones folder {} (includes stay inside it)",
                path.display(),
                self.root
                    .as_deref()
                    .unwrap_or(Path::new("(unresolvable)"))
                    .display()
            );
            return self.problem(file, line, message);
        }
        match ZoneSource::from_path(&resolved) {
            Ok(mut source) => {
                source.display = path.display().to_string();
                // RFC 1035 §5.1: an $INCLUDE does not change the parent's origin.
                self.read_file(&source, new_origin, depth + 1);
            }
            Err(problem) => self.problem(
                file,
                line,
                format!(
                    "cannot read $INCLUDE file {}: {}",
                    path.display(),
                    problem
                        .message
                        .trim_start_matches("cannot read zone file: ")
                ),
            ),
        }
    }

    /// `[owner] [ttl] [class] type rdata...`, TTL and class in either order.
    fn record(&mut self, entry: &Entry, origin: &Name, file: &str) -> Result<(), String> {
        let tokens = &entry.tokens;
        let mut i = 0;
        let owner = if entry.starts_blank {
            self.last_owner.clone().ok_or(
                "this record has no owner name and there is no record before it to take one from",
            )?
        } else {
            i = 1;
            let text = &tokens[0].text;
            let owner = if text == "@" {
                origin.clone()
            } else {
                let mut name = Name::parse(text, Some(origin))
                    .map_err(|e| format!("bad owner name {text}: {e}"))?;
                name.set_fqdn(true);
                name
            };
            self.last_owner = Some(owner.clone());
            owner
        };
        let (mut ttl, mut class) = (None, None);
        while i < tokens.len() && !tokens[i].quoted {
            let text = tokens[i].text.as_str();
            if ttl.is_none() && looks_like_ttl(text) {
                ttl = Some(parse_ttl(text)?);
            } else if class.is_none() && is_class(text) {
                class = Some(text.to_ascii_uppercase());
            } else {
                break;
            }
            i += 1;
        }
        let Some(type_token) = tokens.get(i) else {
            return Err(format!(
                "no record type after {owner} (expected a type such as A, AAAA, CNAME, MX, NS or TXT)"
            ));
        };
        let type_text = type_token.text.to_ascii_uppercase();
        match RecordType::from_str(&type_text) {
            Ok(RecordType::ANY | RecordType::AXFR | RecordType::IXFR | RecordType::TSIG)
            | Err(_) => {
                return Err(format!(
                    "{} is not a record type (expected a type such as A, AAAA, CNAME, MX, NS or TXT)",
                    type_token.text
                ));
            }
            Ok(_) => {}
        }
        if let Some(class) = class.filter(|c| c != "IN") {
            return Err(format!(
                "class {class} is not supported: onebox serves class IN only"
            ));
        }
        let ttl = match ttl.or(self.default_ttl).or(self.last_ttl) {
            Some(ttl) => ttl,
            None => return Err("no TTL for this record: give it one or put $TTL before it".into()),
        };
        if ttl_given(tokens, i) {
            self.last_ttl = Some(ttl);
        }
        let rdata: Vec<String> = tokens[i + 1..]
            .iter()
            // BIND accepts `@` for the origin in RDATA (`MX 10 @`); hickory does not.
            .map(|t| {
                if !t.quoted && t.text == "@" {
                    origin.to_ascii()
                } else {
                    t.raw()
                }
            })
            .collect();
        if rdata.is_empty() {
            return Err(format!("{type_text} record for {owner} has no data"));
        }
        if let Some(expected) = rdata_words(&type_text)
            && rdata.len() > expected
        {
            return Err(format!(
                "unexpected {} after the {type_text} record's data ({type_text} takes {expected} value{}; one record per line)",
                rdata[expected],
                if expected == 1 { "" } else { "s" }
            ));
        }
        let text = format!(
            "{} {ttl} IN {type_text} {}\n",
            owner.to_ascii(),
            rdata.join(" ")
        );
        let (_, map) = Parser::new(text, None, Some(origin.clone()))
            .parse()
            .map_err(|e| format!("bad {type_text} record: {e}"))?;
        let record = map
            .into_values()
            .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
            .next()
            .ok_or_else(|| format!("bad {type_text} record: nothing parsed"))?;
        debug_assert_eq!(record.dns_class, DNSClass::IN);
        // What parses may still not fit on the wire (a TXT string over 255 bytes):
        // find out now, not as SERVFAIL on every query for the name.
        if let Err(e) = record.to_bytes() {
            return Err(format!("bad {type_text} record: {e}"));
        }
        self.records.push((
            record,
            Location {
                file: file.to_string(),
                line: entry.line,
            },
        ));
        Ok(())
    }
}

/// How many words the RDATA of a fixed-shape type has; hickory ignores extras.
fn rdata_words(rtype: &str) -> Option<usize> {
    Some(match rtype {
        "A" | "AAAA" | "CNAME" | "NS" | "PTR" | "DNAME" | "ANAME" => 1,
        "MX" => 2,
        "SRV" => 4,
        "SOA" => 7,
        _ => return None,
    })
}

fn ttl_given(tokens: &[Token], type_index: usize) -> bool {
    tokens[..type_index].iter().any(|t| looks_like_ttl(&t.text))
}

/// `3600`, `1h30m`: digits first, then only digits and BIND's unit letters.
fn looks_like_ttl(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "smhdwSMHDW".contains(c))
}

fn is_class(text: &str) -> bool {
    matches!(
        text.to_ascii_uppercase().as_str(),
        "IN" | "CH" | "CS" | "HS" | "NONE" | "ANY"
    ) || text.to_ascii_uppercase().starts_with("CLASS")
}

/// A TTL in seconds or with BIND's units (`1h30m`, `2d`), at most 2^31-1.
pub(crate) fn parse_ttl(text: &str) -> Result<u32, String> {
    let bad = || format!("bad TTL {text}: expected seconds or a value such as 1h30m");
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(u64::from(d)),
            );
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        total = total.saturating_add(number.take().ok_or_else(bad)?.saturating_mul(unit));
    }
    total = total.saturating_add(number.unwrap_or(0));
    if text.is_empty() {
        return Err(bad());
    }
    if total > MAX_TTL {
        return Err(format!(
            "TTL {text} is out of range: at most {MAX_TTL} seconds (RFC 2181 §8)"
        ));
    }
    Ok(total as u32)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    quoted: bool,
}

impl Token {
    /// The token as it must be written back for hickory's parser.
    fn raw(&self) -> String {
        if self.quoted {
            format!("\"{}\"", self.text)
        } else {
            self.text.clone()
        }
    }
}

/// One logical line of a master file: a directive or a record, which parentheses
/// may spread over several physical lines.
#[derive(Debug)]
struct Entry {
    line: usize,
    starts_blank: bool,
    tokens: Vec<Token>,
}

/// Splits master-file text into entries (RFC 1035 §5.1). Escapes inside tokens and
/// quoted strings are kept as written, for hickory to decode.
fn split_entries(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut entries = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut tokens: Vec<Token> = Vec::new();
    let mut entry_line = 1;
    let mut starts_blank = false;
    let mut at_line_start = true;
    let mut paren_line: Option<usize> = None;
    let mut current = String::new();
    let mut in_token = false;

    fn finish(current: &mut String, in_token: &mut bool, tokens: &mut Vec<Token>) {
        if *in_token {
            tokens.push(Token {
                text: std::mem::take(current),
                quoted: false,
            });
            *in_token = false;
        }
    }

    while let Some(c) = chars.next() {
        if at_line_start && paren_line.is_none() {
            entry_line = line;
            starts_blank = c == ' ' || c == '\t';
            at_line_start = false;
        }
        match c {
            '\n' => {
                finish(&mut current, &mut in_token, &mut tokens);
                if paren_line.is_none() {
                    if !tokens.is_empty() {
                        entries.push(Entry {
                            line: entry_line,
                            starts_blank,
                            tokens: std::mem::take(&mut tokens),
                        });
                    }
                    at_line_start = true;
                }
                line += 1;
            }
            ';' => {
                finish(&mut current, &mut in_token, &mut tokens);
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '(' => {
                finish(&mut current, &mut in_token, &mut tokens);
                if paren_line.is_some() {
                    return Err((line, "nested parentheses".into()));
                }
                paren_line = Some(line);
            }
            ')' => {
                finish(&mut current, &mut in_token, &mut tokens);
                if paren_line.take().is_none() {
                    return Err((line, "')' without a matching '('".into()));
                }
            }
            '"' => {
                finish(&mut current, &mut in_token, &mut tokens);
                let start = line;
                let mut quoted = String::new();
                loop {
                    match chars.next() {
                        None => return Err((start, "unterminated quoted string".into())),
                        Some('"') => break,
                        Some('\\') => {
                            quoted.push('\\');
                            if let Some(next) = chars.next() {
                                if next == '\n' {
                                    line += 1;
                                }
                                quoted.push(next);
                            }
                        }
                        Some('\n') => {
                            return Err((
                                start,
                                "unterminated quoted string (a newline inside quotes)".into(),
                            ));
                        }
                        Some(other) => quoted.push(other),
                    }
                }
                tokens.push(Token {
                    text: quoted,
                    quoted: true,
                });
            }
            ' ' | '\t' | '\r' => finish(&mut current, &mut in_token, &mut tokens),
            '\\' => {
                in_token = true;
                current.push('\\');
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            other => {
                in_token = true;
                current.push(other);
            }
        }
    }
    finish(&mut current, &mut in_token, &mut tokens);
    if let Some(open) = paren_line {
        return Err((open, "'(' is never closed".into()));
    }
    if !tokens.is_empty() {
        entries.push(Entry {
            line: entry_line,
            starts_blank,
            tokens,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ParsedZone, Vec<Problem>> {
        parse_zone(&ZoneSource {
            display: "t.zone".into(),
            path: None,
            text: text.into(),
        })
    }

    const HEAD: &str = "$ORIGIN foobar.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 127.0.0.1\n";

    fn problems(body: &str) -> Vec<String> {
        parse(&format!("{HEAD}{body}"))
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_shipped_zone_loads() {
        let zone = parse_zone(&ZoneSource {
            display: "zones/foobar.com.zone".into(),
            path: None,
            text: include_str!("../../zones/foobar.com.zone").into(),
        })
        .unwrap();
        assert_eq!(zone.origin.to_ascii(), "foobar.com.");
        assert_eq!(zone.records.len(), 5);
        assert!(zone.warnings.is_empty(), "{:?}", zone.warnings);
    }

    #[test]
    fn each_bad_input_names_its_line() {
        assert_eq!(
            problems("www 127.0.0.1\n"),
            [
                "t.zone:6: 127.0.0.1 is not a record type (expected a type such as A, AAAA, CNAME, MX, NS or TXT)"
            ]
        );
        assert_eq!(
            problems("www 300 IN\n"),
            [
                "t.zone:6: no record type after www.foobar.com. (expected a type such as A, AAAA, CNAME, MX, NS or TXT)"
            ]
        );
        assert!(
            problems("x.example.org. A 192.0.2.1\n")[0]
                .starts_with("t.zone:6: x.example.org. is outside the zone")
        );
        assert!(
            problems("www CNAME foobar.com.\nwww A 127.0.0.1\n")[0]
                .starts_with("t.zone:7: www.foobar.com. has a CNAME (line 6) and A data")
        );
        assert!(problems("@ CNAME www\n")[0].starts_with("t.zone:6: CNAME at the zone apex"));
        assert!(
            problems("www 2147483648 A 127.0.0.1\n")[0]
                .starts_with("t.zone:6: TTL 2147483648 is out of range")
        );
        assert!(problems("www A 300.1.1.1\n")[0].starts_with("t.zone:6: bad A record"));
        assert!(
            problems("$INCLUDE other.zone\n")[0].starts_with("t.zone:6: $INCLUDE is not available")
        );
        assert!(
            problems(&format!("{} A 127.0.0.1\n", "a".repeat(64)))[0]
                .starts_with("t.zone:6: bad owner name")
        );
    }

    #[test]
    fn missing_soa_and_ns_are_reported() {
        let p = parse("$ORIGIN foobar.com.\n$TTL 300\nwww A 127.0.0.1\n").unwrap_err();
        assert!(p[0].message.starts_with("no SOA record"), "{p:?}");
        let p = parse("$ORIGIN foobar.com.\n$TTL 300\n@ SOA ns1 h 1 2 3 4 5\n").unwrap_err();
        assert!(
            p[0].message.starts_with("no NS record at the apex"),
            "{p:?}"
        );
    }

    #[test]
    fn at_sign_in_rdata_means_the_origin() {
        let zone = parse(&format!("{HEAD}www CNAME @\n")).unwrap();
        let cname = zone
            .records
            .iter()
            .find(|(r, _)| r.record_type() == RecordType::CNAME)
            .unwrap();
        assert_eq!(cname.0.data.to_string(), "foobar.com.");
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("1h30m"), Ok(5400));
        assert_eq!(parse_ttl("2d"), Ok(172_800));
        assert!(parse_ttl("1x").is_err());
    }
}
