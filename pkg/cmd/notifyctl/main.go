// Command notifyctl is the developer's tool for Xpeditis Notify: it mints
// development tokens, publishes events and verifies webhook signatures. The
// benchmarks have their own command, notifybench, in scripts/bench.
package main

import "github.com/xpeditis/notify/pkg/cmd/cli"

const usage = `usage: notifyctl <command> [flags]

commands:
  token     mint a development JWT (HS256) for a user, organization and role
  publish   publish a domain event to the EVENTS stream and print its id
  verify    verify a webhook delivery's signature (secret, raw body, headers)
  listen    forward a development notifyd's webhook deliveries to a local URL
  version   print the version and commit it was built from (also --version)

Run 'notifyctl <command> -h' for the flags and examples of a command.
Flags that name the same thing are the same in every command: -nats (default
$NATS_URL), -secret (the JWT secret, default $JWT_SECRET), -org, -user.`

// commands are notifyctl's subcommands, each in its own file.
var commands = map[string]cli.Subcommand{
	"token":   runToken,
	"publish": runPublish,
	"verify":  runVerify,
	"listen":  runListen,
}

func main() { cli.Main("notifyctl", usage, commands) }
