package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
)

// errHelpShown reports that -h printed the help: the command succeeded.
var errHelpShown = errors.New("help shown")

// usageError is a command line that cannot run; err is nil when the flag
// package already said why (with the usage, on stderr).
type usageError struct{ err error }

func (e usageError) Error() string {
	if e.err == nil {
		return "usage error"
	}
	return e.err.Error()
}

// command is one subcommand: its flags, its help (summary, flags,
// examples), and the flags whose default comes from the environment.
type command struct {
	fs   *flag.FlagSet
	envs []func()
	args string // positional arguments in the usage line; "" accepts none
}

// newCommand starts a subcommand. The examples are printed as they are
// given, one per line, under the flags.
func newCommand(name, summary string, examples ...string) *command {
	c := &command{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.Usage = func() {
		w := c.fs.Output()
		line := "usage: notifyctl " + name + " [flags]"
		if c.args != "" {
			line += " " + c.args
		}
		fmt.Fprintf(w, "%s\n\n%s\n\nflags:\n", line, summary)
		c.fs.PrintDefaults()
		fmt.Fprintf(w, "\nexamples:\n")
		for _, e := range examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	return c
}

// fromEnv defines a string flag whose default is the environment variable
// env, else fallback. The help names the variable and describes the
// fallback in words (fallbackHelp): it never shows either value, since
// either may be a secret or carry a password.
func (c *command) fromEnv(p *string, name, env, fallback, fallbackHelp, usage string) {
	help := fmt.Sprintf("%s (default: $%s", usage, env)
	if fallbackHelp != "" {
		help += ", else " + fallbackHelp
	}
	c.fs.StringVar(p, name, "", help+")")
	c.envs = append(c.envs, func() {
		if *p == "" {
			*p = os.Getenv(env)
		}
		if *p == "" {
			*p = fallback
		}
	})
}

// parse parses args. The help asked for with -h goes to standard output
// (errHelpShown); a bad flag is reported with the usage on standard error
// (usageError).
func (c *command) parse(args []string, io stdio) error {
	var buf bytes.Buffer
	c.fs.SetOutput(&buf)
	err := c.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = io.out.Write(buf.Bytes())
		return errHelpShown
	}
	if err != nil {
		_, _ = io.err.Write(buf.Bytes())
		return usageError{}
	}
	if c.args == "" && c.fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q (flags go before arguments; see -h)", c.fs.Name(), c.fs.Arg(0))}
	}
	for _, fill := range c.envs {
		fill()
	}
	return nil
}

// Defaults shared by the commands.
const (
	defaultNATSURL = "nats://127.0.0.1:4223" // notifyd's NATS_LISTEN
	natsURLHelp    = "notifyd's producer listener " + defaultNATSURL
)

// natsFlag is -nats, the same in every command that talks to NATS.
func (c *command) natsFlag(p *string) {
	c.fromEnv(p, "nats", "NATS_URL", defaultNATSURL, natsURLHelp, "NATS server URL, the one the services use")
}
