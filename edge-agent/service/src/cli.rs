//! The command line of the service binaries that take commands (`dcim-server`, `dcim-demo`):
//! words (commands and their operands) and `--name VALUE` options, `--help`/`--version` moved
//! to the front. Each binary lists its own options (and may take some itself, as the server's
//! `--config`); the loop, the error exit and the help and version answers are the same.

/// A parsed command line: `words` in order (`--help`, `-h`, `--version` or `-V` first when
/// given), `opts` as (name without the dashes, value) in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub words: Vec<String>,
    pub opts: Vec<(String, String)>,
}

impl Args {
    /// Parses `args` (without the program name). `special` is asked first about every
    /// argument and answers `Ok(true)` when it took it (reading any value from the iterator);
    /// then the names in `valued` take the next argument as their value; any other argument
    /// starting with `-` is an error (`unknown option`), the rest are words.
    pub fn parse<I: Iterator<Item = String>>(
        mut args: I,
        valued: &[&str],
        mut special: impl FnMut(&str, &mut I, &mut Args) -> Result<bool, String>,
    ) -> Result<Args, String> {
        let mut parsed = Args::default();
        while let Some(a) = args.next() {
            if special(&a, &mut args, &mut parsed)? {
                continue;
            }
            match a.as_str() {
                v if valued.contains(&v) => {
                    let value = args.next().ok_or(format!("{a} needs a value"))?;
                    parsed
                        .opts
                        .push((a.trim_start_matches('-').to_string(), value));
                }
                "--help" | "-h" | "--version" | "-V" => parsed.words.insert(0, a),
                s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
                _ => parsed.words.push(a),
            }
        }
        Ok(parsed)
    }

    /// The first word (the command), if any.
    pub fn command(&self) -> Option<&str> {
        self.words.first().map(String::as_str)
    }
}

/// The parsed command line, or (on an error) the error and `usage` on stderr and exit status 2.
pub fn or_exit<T>(program: &str, usage: &str, parsed: Result<T, String>) -> T {
    parsed.unwrap_or_else(|e| {
        eprintln!("{program}: {e}\n\n{usage}");
        std::process::exit(2);
    })
}

/// Answers `--help` (prints `usage`) and `--version` (prints `program version`) when `command`
/// (the first word) is one of them; true when it answered and the caller returns.
pub fn help_or_version(program: &str, version: &str, usage: &str, command: Option<&str>) -> bool {
    match command {
        Some("--help") | Some("-h") => print!("{usage}"),
        Some("--version") | Some("-V") => println!("{program} {version}"),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<Args, String> {
        Args::parse(
            line.iter().map(|s| s.to_string()),
            &["--data"],
            |_, _, _| Ok(false),
        )
    }

    #[test]
    fn an_option_without_its_value_is_an_error_not_an_empty_value() {
        // Hazard: `--data` at the end read as "" would run on the current directory.
        assert_eq!(parse(&["--data"]).unwrap_err(), "--data needs a value");
    }

    #[test]
    fn an_unknown_option_is_an_error_not_a_word() {
        // Hazard: a misspelt `--dat x` taken as the words `--dat x` would run with defaults.
        assert_eq!(
            parse(&["--dat", "x"]).unwrap_err(),
            "unknown option `--dat`"
        );
    }

    #[test]
    fn help_goes_first_so_it_wins_over_a_command() {
        // Hazard: `restore FILE --help` must print the usage, not restore.
        let a = parse(&["restore", "f", "--data", "d", "--help"]).unwrap();
        assert_eq!(a.words, ["--help", "restore", "f"]);
        assert_eq!(a.opts, [("data".to_string(), "d".to_string())]);
        assert_eq!(a.command(), Some("--help"));
    }

    #[test]
    fn the_special_hook_sees_every_argument_first() {
        // Hazard: the server's `-c FILE` taken as an unknown option, or its file as a command,
        // would refuse (or misread) the configuration the operator named.
        let mut config = None;
        let a = Args::parse(
            ["-c", "x.toml", "run"].into_iter().map(String::from),
            &[],
            |a, it, _| {
                if a == "-c" {
                    config = it.next();
                    return Ok(true);
                }
                Ok(false)
            },
        )
        .unwrap();
        assert_eq!(config.as_deref(), Some("x.toml"));
        assert_eq!(a.words, ["run"]);
    }
}
