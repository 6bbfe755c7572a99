"""Help text. Static strings: printing help must not import anything else."""

from __future__ import annotations

MAIN_HELP = """\
sig — log in once, let programs use the login without seeing the secret

Usage: sig <command> [options]

Authentication:
  login <url|provider>          Log in and store the credential sealed on disk
    --as <id>                     Provider id to use for a new URL
    --strategy <name>             browser | cookie | api-token | basic | prompt | oauth2
    --token-stdin | --token-env VAR | --token T     API token (stdin keeps it out of argv)
    --cookie-stdin | --cookie "k=v; k2=v2"          Cookie header copied from a browser
    --username U --password-stdin | --password P    HTTP Basic
    --header-name <name>          Header for an API token (default Authorization)
    --header-prefix <prefix>      Prefix for an API token (default "Bearer")
    --token-url, --client-id, --client-secret(-stdin), --scope, --grant   OAuth2
    --mode <mode>                 auto | headless | cdp | visible (browser login; this run only)
    --network-proxy <url>         Proxy for browser or token requests (this run only)
    --force                       Log in again even if a valid credential is stored
    --adopt-unsealed              Seal the provider's plain-JSON credential file (one you put there)
  logout [provider]             Clear one credential, or all of them (asks first)
    --all --force                 Clear all without asking (needed off a terminal)

Credentials (most → least secure):
  proxy start|stop|status|trust|env   Local proxy that adds credentials in flight
    --port <n>                    Port for `proxy start` (default 7891, 0 = any free port);
                                  `sig proxy --port N` alone means start
    --foreground                  `proxy start` in this process, until Ctrl-C
  request <url>                 One authenticated HTTP request (curl's short flags work too)
    -X, --method <METHOD>         HTTP method (default GET; POST with a body)
    -d, --body <json>             Request body (text, @file or - for stdin)
    -H, --header "Name: Value"    Extra header (repeatable)
    -o, --output <file>           Write the body to a file (redacted as stdout would be)
    --format json|body|headers    Output format (default json)
    --provider <id>               Provider(s) whose rules apply (comma-separated)
  run [provider[,provider]...] -- <cmd>   Run a command with SIG_<PROVIDER>_* variables, output redacted
    --env NAME=<provider>.<key>   Also set NAME to a value (repeatable); providers' env: maps too
    --expand-cookies              Also set SIG_<PROVIDER>_COOKIE_<NAME> per cookie
    --mount <path>                Write the credentials to a file removed afterwards
    --mount-format env|dotenv|json|yaml   (--mount-force to replace a file)
    --command '<shell string>'    Run a shell command line instead of argv
    --no-redaction                Do not redact the child's output (agent: a person must say yes)
    --proxy                       Give the child proxy settings instead of secrets
    --sandbox                     Run it under bubblewrap: no sig data or secret stores, network only
                                  through the proxy, placeholders instead of values (Linux)
  get <provider|url>            Print the headers a provider adds (values redacted)
    --format json|header|value    Output format (default json)
    --no-redaction                Print raw values (warns; agent: a person must say yes)
  status [provider]             Show which credentials are stored and valid, and whose they are
    --format json|yaml|env|table|plain
  whoami <provider>             Same as status: the account behind a credential

Provider management:
  providers                     List configured providers
    --presets                     List the validation presets for public sites instead
    --format json|yaml|env|table|plain
  rename <old> <new>            Rename a provider (config, credential, watch list)
  remove <provider> [...]       Remove providers and their credentials
    --keep-config                 Keep the config entry, remove only the credential
    --force                       Do not ask for confirmation

Remote & sync:
  remote add <name> <host>      Add an SSH remote (host or ssh://user@host[:port][/path])
    --user <user>                 SSH user name
    --path <path>                 Credentials directory on the remote
    --ssh-key <key>               SSH private key file
    --port <port>                 SSH port
  remote remove <name>          Remove a remote
  remote list                   List remotes
    --format json|table
  sync push|pull [remote]       Copy credentials over SSH
    --provider <id>               Only this provider (repeatable)
    --force                       Overwrite on conflict

Watch:
  watch add <provider>          Keep a provider's credential fresh
    --auto-sync <remote>          Push to a remote after each refresh
  watch remove <provider>       Stop watching a provider
  watch list                    Show the watch list
  watch set-interval <dur>      How often to check (e.g. 5m, 1h)
  watch start                   Run the refresh loop in the foreground

Setup:
  init                          Create the config, key and folders
    --remote                      Machine without a browser (mode: browserless)
    --yes                         Accept the defaults, ask nothing
    --force                       Replace an existing config (backed up; credentials kept)
    --channel chrome|msedge|chromium
  doctor                        Check the installation and say how to fix what is wrong
  config path|get|set|unset     Read or change a setting: sig config set browser.adapter playwright
  completion bash|zsh|fish      Print a shell completion script

Security: proxy ≥ request > run > get. Secrets stay sealed in $SIG_HOME (default ~/.sig).
Under an AI agent (SIG_AGENT=1, CLAUDECODE, …) raw values (--no-redaction) need a person's yes on the terminal.

Global options:
  --format <fmt>                Output format where listed; errors as JSON with --format json
  --json                        The same as --format json, wherever --format is accepted
  --verbose                     Debug output (never secret values) on stderr
  --version                     Show the version
  --help, -h                    Show help (also: sig <command> --help)

Exit codes: 0 ok, 1 error, 2 provider not found, 3 credential not found or expired, 4 remote not found.
"""

_COMMANDS: dict[str, str] = {
    "login": """\
Usage: sig login <url|provider> [options]

Log in and store the credential, sealed, under $SIG_HOME/credentials. A URL that no provider matches
creates a provider for its host (its id derived from the host name, or given with --as); it is written
to config.yaml once the login succeeds.

In a browser (the default for a new URL): sig starts Chrome/Chromium/Edge on its own profile
($SIG_HOME/browser-data), waits until the site accepts the captured cookies/tokens, then closes it.
  --mode auto          headless first (a session already in the profile, or an SSO that finishes by
                       itself), then a window for you to log in (default)
  --mode headless      never open a window
  --mode visible       a window at once
  --mode cdp           a window driven over CDP whatever browser.adapter says (no automation markers)
  --cdp-url URL        use the Chrome you already run with a DevTools port (remote-debugging-port,
                       e.g. http://127.0.0.1:9222; loopback only): sig opens and closes only its own tab

Without a browser:
  --token-stdin | --token-env VAR | --token T     API token (default header "Authorization: Bearer …")
  --header-name NAME --header-prefix PREFIX       Where the token goes (e.g. --header-name X-API-Key)
  --cookie-stdin | --cookie "k=v; k2=v2"          Cookie header
  --username U --password-stdin | --password P    HTTP Basic
Other options:
  --as <id>            Provider id (new provider, or a copy of an existing one under a new id)
  --strategy <name>    browser | cookie | api-token | basic | prompt | oauth2
  --force              Log in even when a valid credential is stored
  --mode <mode>        auto | headless | cdp | visible (browser login), this login only
  --format json        The result (always JSON) and errors as JSON
  --network-proxy URL  Proxy for browser or token requests, this login only
  --token-url URL --client-id ID --client-secret S | --client-secret-stdin --scope "a b"
  --grant client_credentials|authorization_code|device_code --auth-url URL --device-url URL
  --adopt-unsealed     Seal this provider's plain-JSON credential file instead of logging in (sig
                       refuses unsealed files once it has a key; use this for a file you put there)

Values are UTF-8 text of at most 64 KiB each (tokens and cookies: Latin-1, as HTTP headers carry
them). Secrets given in argv (--token, --cookie, --password, --client-secret) are visible to other
processes: sig warns; prefer the -stdin / -env forms.

Examples:
  sig login https://jira.example.com                          # browser SSO, provider jira-example
  sig login https://app.slack.com/client/T123 --as app-slack --mode visible
  printf %s "$TOKEN" | sig login https://api.example.com --token-stdin --as my-api
  sig login https://jira.example.com --cookie-stdin < cookie.txt
  sig login https://git.example.com --username alice --password-stdin

A failed login changes nothing: config.yaml and the stored credential stay as they were.
--mode and --network-proxy are never saved: to keep them for a provider (and for `sig watch`), set
loginMode / networkProxy in its entry in config.yaml.
""",
    "logout": """\
Usage: sig logout <provider> [--format json]
       sig logout [--all] [--force]

Clear the stored credential of one provider, or of every provider when none is named.
The config is kept. For OAuth2 providers the client credentials are kept so sig can log in again.
Clearing every credential asks first on a terminal (saying how many and which); when standard input
is not a terminal it needs --all --force.
  --all           clear every provider's credential
  --force         do not ask (with --all)
  --format json   errors as JSON on stderr
""",
    "get": """\
Usage: sig get <provider|url> [--format json|header|value] [--no-redaction]

Print the headers the provider's apply rules produce. Secret values are shown as **** unless
--no-redaction is given (which warns). Under an AI agent (SIG_AGENT=1, CLAUDECODE, …) --no-redaction
asks the person at the terminal first and is refused without their yes (exit 1); no flag skips that.
Prefer `sig request` or `sig run` for automation.
  --format F         json (default) | header | value
  --no-redaction     print the raw values
Exit codes: 2 no such provider, 3 no valid credential stored.
""",
    "status": """\
Usage: sig status [provider] [--format json|yaml|env|table|plain]
       sig whoami <provider>

Show whether each provider has a stored, valid credential and when it expires.
Table on a terminal, JSON otherwise. Exit 2 for an unknown provider, 3 when the named provider has no
stored credential.
For a named provider, also the account behind the credential ("identity"), where it can be known:
its userinfo endpoint (userinfoUrl or oauth2.userinfoUrl in the config, asked with the credential), the
sub/email/preferred_username of a JWT among the values (signature not checked: shown as "claimed"), or
a stored user name. Never a secret.
  --provider ID   same as naming the provider
  --format F      json | yaml | env | table | plain
""",
    "providers": """\
Usage: sig providers [--presets] [--format json|yaml|env|table|plain]

List the configured providers with their strategy and whether they are authenticated.
  --presets   list the validation presets instead: public sites (Google, X, Reddit, YouTube, V2EX, Zhihu)
              whose validateUrl/validateRule `sig login <url>` fills in for a new provider
""",
    "rename": """\
Usage: sig rename <old> <new> [--format json]

Rename a provider: its config entry (comments kept), its stored credential and its watch entry.
  --format json   errors as JSON on stderr
""",
    "remove": """\
Usage: sig remove <provider> [provider...] [--force] [--keep-config]

Remove providers: their credentials and (unless --keep-config) their config and watch entries.
Asks for confirmation on a terminal; pass --force when not on a terminal.
  --keep-config   remove only the credential
  --force         do not ask
  --format json   errors as JSON on stderr
""",
    "init": """\
Usage: sig init [--yes] [--remote] [--force] [--channel chrome|msedge|chromium]
                [--browser-data-dir DIR] [--credentials-dir DIR]

Create $SIG_HOME/config.yaml (default ~/.sig), the encryption key and the folders (0700).
  --remote   machine without a browser: mode browserless, no browser detection
  --yes      accept the defaults without asking
  --force    replace an existing config (the old one is kept as config.yaml.bak; credentials are kept)

Run again without --force, it keeps the existing config and key, creates what is missing (folders, the
key) and reports what is there.
  --channel  which browser to look for first
  --browser-data-dir DIR   the browser profile folder (default ~/.sig/browser-data)
  --credentials-dir DIR    where sealed credentials go (default ~/.sig/credentials)
""",
    "doctor": """\
Usage: sig doctor [--format json]

Check the Python version, the config, folders and their permissions, the encryption key, the browser,
the proxy CA and stale locks. Every failure comes with its fix. The report goes to stdout (so
`sig doctor | less` works); exit 1 when any check fails.
  --format json   the checks as JSON (also --json)
""",
    "config": """\
Usage: sig config path
       sig config get [KEY] [--format json]
       sig config set KEY VALUE
       sig config unset KEY

Read and change config.yaml without editing it by hand. Edits keep the file's comments and order, are
checked with the config's own rules before anything is written (an invalid value changes nothing), and
replace the file atomically.
  path     print where the config file is ($SIG_HOME/config.yaml)
  get      print a setting (a section as YAML; JSON with --format json / --json); without KEY the
           whole file. Defaults are shown for settings not written in the file. Nothing secret is
           printed: ${VAR} references stay as written, a password inside a URL shows as ****
  set      write a setting; unset removes it
Settings (KEY), dotted:
  mode                            browser | browserless
  browser.adapter                 cdp | playwright
  browser.execPath, browser.browserDataDir, browser.channel, browser.waitUntil
  browser.headlessTimeout, browser.visibleTimeout     milliseconds
  storage.credentialsDir, watch.interval (e.g. 5m)
  providers.<id>.<field>          e.g. allowHttp, caFile, ports, domains, entryUrl, validateUrl,
                                  networkProxy, headerName, headerPrefix, ttl, loginMode, name
  providers.<id>.oauth2.<field>   e.g. tokenUrl, clientId, scopes, redirectPort, callbackTimeout
  providers.<id>.env.<NAME>       an app-named variable's template for `sig run`
Values: true/false for switches, numbers for timeouts and ports, lists as a,b (scopes also "a b"),
anything else as the text given (a value starting with - goes after --).
Fields that decide where a credential may go (a provider's domains, ports, URLs, caFile, allowHttp,
networkProxy, headerName, headerPrefix; browser.execPath) are changed under an AI agent only after a
person says yes on the terminal (the same question as for raw values).
Examples:
  sig config set providers.api.allowHttp true
  sig config set browser.adapter playwright
  sig config set providers.api.ports 443,8443
  sig config get providers.api --json
""",
    "completion": """\
Usage: sig completion bash|zsh|fish

Print a completion script. Install, e.g.:
  bash: sig completion bash > ~/.local/share/bash-completion/completions/sig
  zsh:  source <(sig completion zsh)          (in ~/.zshrc, after compinit)
  fish: sig completion fish > ~/.config/fish/completions/sig.fish
Commands, each command's own flags (from the same tables the parser uses) and their values are
completed; provider ids are read from the config file directly (no sig process per TAB).
""",
    "run": """\
Usage: sig run [provider[,provider]...] [options] -- <command> [args...]

Run a command with SIG_<PROVIDER>_* environment variables; secret values in its output are redacted.
With no provider, every provider holding a valid credential is used (sig never prompts here).
Providers may be listed apart or comma-separated (sig run a,b -- cmd).
App-named variables: a provider's `env:` map in the config (DATABASE_URL: "postgres://app:{password}@db/app";
{key} or ${key} name the credential's values, also {token}, {cookie}, {auth_header}) and --env.
  --env NAME=P.KEY           also set NAME to value KEY of provider P (repeatable; wins over env: maps)
  --command 'shell string'   run a shell line ($SHELL -c) instead of argv after --
  --expand-cookies           also SIG_<P>_COOKIE_<NAME> for each cookie
  --mount PATH               also write the variables to PATH (0600), removed when the command ends
  --mount-format F           env (default, POSIX-quoted) | dotenv | json | yaml
  --mount-force              replace an existing file at PATH
  --no-redaction             pass the output through unchanged (warns; under an AI agent only after a
                             person's yes on the terminal, else refused with exit 1)
  --proxy                    only proxy + CA settings, no secret (needs `sig proxy start`)
  --sandbox                  run it in a sandbox (bubblewrap, Linux; needs `sig proxy start`): the
                             filesystem read-only except the working directory and a private /tmp; sig's
                             data and the usual secret stores (~/.ssh, ~/.aws, browser profiles…) hidden;
                             no network but the proxy, which adds credentials; the named providers'
                             variables hold per-run placeholders the proxy swaps only for their own hosts
  --allow-write PATH         with --sandbox: PATH is writable too (repeatable)
  --hide PATH                with --sandbox: PATH is hidden too (repeatable)
  --deny-other-hosts         with --sandbox: only provider hosts (and --allow-host ones) are reachable
  --allow-host HOST          with --sandbox: HOST (or *.domain) is reachable even with --deny-other-hosts,
                             and even when it is this machine (localhost; refused otherwise)
  --allow-tcp HOST:PORT      with --sandbox: a raw TCP tunnel to HOST:PORT is allowed (repeatable)
                             (defaults for all of these: the `sandbox:` section of the config)
  --format json              errors as JSON on stderr
Exit status: the command's own; 128+N if it was killed by signal N; 127 if it was not found.
""",
    "request": """\
Usage: sig request <url> [-X M] [-d STR|@file|-] [-H "N: V"]... [-o FILE] [--format json|body|headers]
                         [--provider a,b] [--cacert FILE] [--no-redaction]

Make one HTTP request with the matching provider's credentials applied; they never leave sig.
  -X, --method M         HTTP method (default GET, or POST with a body); -XPOST works too
  -d, --body STR|@file|- request body: text, a file, or standard input
  -H, --header "N: V"    extra header (repeatable; wins over the provider's of the same name)
  -o, --output FILE      write the response body to FILE (- for stdout), redacted as stdout would be
                         (with --no-redaction the file is made 0600); nothing else is printed unless
                         --format headers asks for the status line and headers too
  --format F             json (default: status, statusText, headers, body; a JSON answer's body as JSON)
                         | body | headers (--json is --format json)
  --provider a,b         use these providers' rules (default: the one matching the URL's host)
  --cacert FILE          extra CA certificate(s) to trust
  --timeout SECONDS      give up waiting after this long (default 30)
  --no-redaction         do not redact injected values from the output (under an AI agent only
                         after a person's yes on the terminal, else refused with exit 1)
Redirects are followed; nothing sig added is sent to another origin. Exit 0 on 2xx, else 1.
""",
    "proxy": """\
Usage: sig proxy start [--port N] [--no-auth] [--foreground] | stop | status [--format json] | trust
       | env [--format json]
       sig proxy --port N          (the same as `sig proxy start --port N`)

A local proxy on 127.0.0.1 that adds credentials to requests in flight; programs never see them,
and answers that echo them come back with `****` (a provider's redactResponses: false turns it off).
  start     start the daemon (default port 7891, 0 = any free port); returns when it is ready
    --foreground  serve in this process instead (logs on stderr) until Ctrl-C or SIGTERM
    (sig --verbose proxy start: log every request in proxy.log; by default only start-up, errors
    and a note per host at most once a minute. proxy.log is rotated at 5 MiB, 3 old files kept)
  stop      stop it;  status: running? port, providers, watch list, remotes
  trust     print the CA certificate path and how to trust it system-wide
  env       export lines for clients: HTTP(S)_PROXY with your proxy token, CA bundle variables,
            NO_PROXY = yours + localhost,127.0.0.1,::1 (less entries covering a provider's hosts)
  --no-auth serve without the per-user proxy token (any local program could use your credentials)
""",
    "remote": """\
Usage: sig remote add <name> <host|ssh://user@host[:port][/path]> [--user U] [--ssh-key K] [--path P] [--port N]
       sig remote remove <name>
       sig remote list [--format json|table]
""",
    "sync": """\
Usage: sig sync push|pull [remote] [--provider id]... [--force] [--format json]

Copy credentials (and provider entries) to or from a remote over SSH. Exit 4 for an unknown remote.
  --provider id   only these providers (repeatable, or a,b). On pull, naming a provider trusts the
                  remote with it; without names a pull takes only providers pushed to or pulled by
                  name from that remote before (the others are listed under notExchanged)
  --force         overwrite a copy that is newer on the other side (dates only, never trust)
  --format json   errors as JSON on stderr
A pull that changes where a credential may go (domains, ports, URLs, proxy, CA file, apply rules)
shows the change and asks at a terminal; without one it is refused (exit 1, SYNC_CONFLICT).
""",
    "watch": """\
Usage: sig watch add <provider> [--auto-sync <remote>]...
       sig watch remove <provider>
       sig watch list [--format json|table]
       sig watch set-interval <duration>
       sig watch start [--once] [--interval <duration>]

Keep credentials fresh: every interval (default 5m), renew each watched credential that would expire
before the next check, single-flight across sig processes, and push renewed ones to the provider's
--auto-sync remotes (a failed push is retried with backoff). OAuth2: refresh token or client credentials.
Browser logins: a headless login with the kept session cookies, never a window or a prompt (not with
mode: browserless or browser.cdpUrl); when the site shows its login page, it gives up after
browser.headlessTimeout, keeps the old credential, and waits for a new login or a config change before
trying again. Providers that need you (no credential, static logins that expired, a session the site
ended) are reported as "needs login" once, not on every pass. The config is re-read on every pass.
  add           watch a provider (stored by its id); --auto-sync <remote> is repeatable, exit 4 if unknown
  remove        stop watching a provider
  list          the watch list with each credential's state (table on a terminal, JSON otherwise)
  set-interval  how often to check: 30s, 5m, 1h (at least 1s)
  start         run the loop in the foreground; Ctrl-C or SIGTERM stops it (exit 0)
    --once        one pass, print its results (JSON: provider, action, detail, sync) and exit
    --interval    use this interval instead of the configured one
""",
}


def command_help(command: str) -> str | None:
    """The --help text of a command, or None for an unknown one."""
    return _COMMANDS.get(command)
