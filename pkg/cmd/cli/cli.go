// Package cli holds the command-line conventions of the project's tools
// (notifyctl, and notifybench in scripts/bench): a flag set per subcommand
// with its help and examples, flags whose default comes from the environment
// without the help ever showing it, the same flag for the same thing in every
// command, and one mapping from a command's error to its exit code.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/xpeditis/notify/pkg/buildinfo"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/xpeditis/notify/pkg/auth"
)

// Stdio is where a command reads and writes; tests pass buffers.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// OS is the process's own standard input, output and error.
func OS() Stdio { return Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr} }

// ErrHelpShown reports that -h printed the help: the command succeeded.
var ErrHelpShown = errors.New("help shown")

// UsageError is a command line that cannot run; Err is nil when the flag
// package already said why (with the usage, on stderr).
type UsageError struct{ Err error }

func (e UsageError) Error() string {
	if e.Err == nil {
		return "usage error"
	}
	return e.Err.Error()
}

// Usagef is a UsageError with a message.
func Usagef(format string, a ...any) error { return UsageError{fmt.Errorf(format, a...)} }

// Subcommand runs one subcommand with the arguments after its name.
type Subcommand func(ctx context.Context, args []string, io Stdio) error

// Main runs the command line of the process under a context that SIGINT
// and SIGTERM cancel, and exits with Run's code.
func Main(program, usage string, subs map[string]Subcommand) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, program, usage, subs, os.Args[1:], OS())
	stop()
	os.Exit(code)
}

// Run runs the subcommand that args name and returns the exit code
// (ExitCode); without arguments, or with an unknown subcommand, it prints
// the usage on stderr, and with -h on stdout; version (or --version) prints
// the build (pkg/buildinfo).
func Run(ctx context.Context, program, usage string, subs map[string]Subcommand, args []string, io Stdio) int {
	if len(args) == 0 {
		fmt.Fprintln(io.Err, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(io.Out, usage)
		return 0
	case "--version", "-version", "version":
		buildinfo.PrintVersion(io.Out, program)
		return 0
	}
	sub, ok := subs[args[0]]
	if !ok {
		return ExitCode(program, Usagef("unknown command %q\n\n%s", args[0], usage), io)
	}
	return ExitCode(program, sub(ctx, args[1:], io), io)
}

// ExitCode reports err on stderr, prefixed by the program's name, and
// returns the exit code: 0 when the command succeeded or printed the help
// that was asked for, 2 for a usage error, 1 otherwise.
func ExitCode(program string, err error, io Stdio) int {
	var ue UsageError
	switch {
	case err == nil, errors.Is(err, ErrHelpShown):
		return 0
	case errors.As(err, &ue):
		if ue.Err != nil {
			fmt.Fprintln(io.Err, program+":", ue.Err)
		}
		return 2
	default:
		fmt.Fprintln(io.Err, program+":", err)
		return 1
	}
}

// Command is one subcommand: its flags, its help (summary, flags,
// examples), and the flags whose default comes from the environment.
type Command struct {
	FS   *flag.FlagSet
	Args string // positional arguments in the usage line; "" accepts none
	envs []func()
}

// New starts the subcommand name of program. The examples are printed as
// they are given, one per line, under the flags.
func New(program, name, summary string, examples ...string) *Command {
	c := &Command{FS: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.FS.Usage = func() {
		w := c.FS.Output()
		line := "usage: " + program + " " + name + " [flags]"
		if c.Args != "" {
			line += " " + c.Args
		}
		fmt.Fprintf(w, "%s\n\n%s\n\nflags:\n", line, summary)
		c.FS.PrintDefaults()
		fmt.Fprintf(w, "\nexamples:\n")
		for _, e := range examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	return c
}

// FromEnv defines a string flag whose default is the environment variable
// env, else fallback. The help names the variable and describes the
// fallback in words (fallbackHelp): it never shows either value, since
// either may be a secret or carry a password.
func (c *Command) FromEnv(p *string, name, env, fallback, fallbackHelp, usage string) {
	help := fmt.Sprintf("%s (default: $%s", usage, env)
	if fallbackHelp != "" {
		help += ", else " + fallbackHelp
	}
	c.FS.StringVar(p, name, "", help+")")
	c.envs = append(c.envs, func() {
		if *p == "" {
			*p = os.Getenv(env)
		}
		if *p == "" {
			*p = fallback
		}
	})
}

// Parse parses args. The help asked for with -h goes to standard output
// (ErrHelpShown); a bad flag is reported with the usage on standard error
// (UsageError).
func (c *Command) Parse(args []string, io Stdio) error {
	var buf bytes.Buffer
	c.FS.SetOutput(&buf)
	err := c.FS.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = io.Out.Write(buf.Bytes())
		return ErrHelpShown
	}
	if err != nil {
		_, _ = io.Err.Write(buf.Bytes())
		return UsageError{}
	}
	if c.Args == "" && c.FS.NArg() > 0 {
		return Usagef("%s: unexpected argument %q (flags go before arguments; see -h)", c.FS.Name(), c.FS.Arg(0))
	}
	for _, fill := range c.envs {
		fill()
	}
	return nil
}

// Defaults shared by the commands.
const (
	DefaultNATSURL = "nats://127.0.0.1:4223" // notifyd's NATS_LISTEN
	natsURLHelp    = "notifyd's producer listener " + DefaultNATSURL
)

// NATSFlag is -nats, the same in every command that talks to NATS.
func (c *Command) NATSFlag(p *string) {
	c.FromEnv(p, "nats", "NATS_URL", DefaultNATSURL, natsURLHelp, "NATS server URL, the one the services use")
}

// SecretFlag is -secret, the JWT secret, the same in every command that
// mints tokens.
func (c *Command) SecretFlag(p *string) {
	c.FromEnv(p, "secret", "JWT_SECRET", auth.DevSecret, "notifyd's public development secret", "HS256 secret the server accepts")
}

// DBFlag is -db, the same in every command that reads PostgreSQL.
func (c *Command) DBFlag(p *string) {
	c.FromEnv(p, "db", "DATABASE_URL", "", "", "PostgreSQL URL of the service's database")
}
