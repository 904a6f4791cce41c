package natsx

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// EmbeddedOptions configures the in-process NATS server.
type EmbeddedOptions struct {
	StoreDir string // JetStream store
	Listen   string // host:port for outside producers (port 0: any free port); "" listens nowhere (in-process only)
	Name     string
	// Auth, when set, makes every client authenticate: in-process clients
	// with Auth.InProcess, outside ones with a producer NKey. When nil the
	// server is open to whoever reaches Listen (development, on loopback).
	Auth *EmbeddedAuth
}

// ProducerPermissions are what a producer may do: publish domain events,
// and receive the JetStream acknowledgements of its publishes on the
// default reply prefix. It is the PRODUCER block of
// deploy/nats/permissions.conf (a test keeps the two equal).
func ProducerPermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"events.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// EmbeddedAuth is who may connect to an embedded server: the services of
// this process, with a key made at each start and held only in memory, and
// producers from outside, each with an NKey of its own and
// ProducerPermissions.
type EmbeddedAuth struct {
	internal  nkeys.KeyPair
	producers []string // public user NKeys
}

// NewEmbeddedAuth lets in the producers with the given public user NKeys
// ("U…").
func NewEmbeddedAuth(producers []string) (*EmbeddedAuth, error) {
	for i, p := range producers {
		if !nkeys.IsValidPublicUserKey(p) {
			// Not echoed: a pasted seed is a secret.
			hint := ""
			if strings.HasPrefix(p, "S") {
				hint = "; it looks like a seed: give the public key and keep the seed secret"
			}
			return nil, fmt.Errorf("embedded nats: producer key %d is not a public user NKey (one starting with U)%s", i+1, hint)
		}
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("embedded nats: internal key: %w", err)
	}
	return &EmbeddedAuth{internal: kp, producers: producers}, nil
}

// InProcess is the option that signs this process's own connections in.
func (a *EmbeddedAuth) InProcess() nats.Option {
	pub, _ := a.internal.PublicKey() // cannot fail for a key made by CreateUser
	return nats.Nkey(pub, a.internal.Sign)
}

func (a *EmbeddedAuth) users() []*server.NkeyUser {
	pub, _ := a.internal.PublicKey()
	// The services of this process may do everything (nil permissions).
	users := []*server.NkeyUser{{Nkey: pub}}
	for _, p := range a.producers {
		users = append(users, &server.NkeyUser{Nkey: p, Permissions: ProducerPermissions()})
	}
	return users
}

// ProducerSeed returns the public key of the producer NKey whose seed is
// kept in path, creating the key (file mode 0600) when the file does not
// exist yet. created reports that it was made now.
func ProducerSeed(path string) (public string, created bool, err error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", false, fmt.Errorf("producer nkey: %w", err)
		}
		if seed, err = kp.Seed(); err != nil {
			return "", false, fmt.Errorf("producer nkey: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", false, fmt.Errorf("producer nkey: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", false, fmt.Errorf("producer nkey: %w", err)
		}
		_, werr := f.Write(append(seed, '\n'))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return "", false, fmt.Errorf("producer nkey: write %s: %w", path, werr)
		}
		created = true
	} else if err != nil {
		return "", false, fmt.Errorf("producer nkey: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		return "", false, fmt.Errorf("producer nkey %s: %w", path, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", false, fmt.Errorf("producer nkey %s: not a user seed", path)
	}
	return pub, created, nil
}

// RunEmbedded starts a NATS server with JetStream in this process and waits
// until it accepts connections. Clients in the same process connect with
// nats.InProcessServer(srv) (and o.Auth.InProcess() when o.Auth is set).
func RunEmbedded(o EmbeddedOptions) (*server.Server, error) {
	opts := &server.Options{
		ServerName:         o.Name,
		JetStream:          true,
		StoreDir:           o.StoreDir,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         1 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	if o.Auth != nil {
		opts.Nkeys = o.Auth.users()
	}
	if o.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen address %q: %w", o.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen port %q: %w", port, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
		}
		opts.Host, opts.Port = host, p
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 10s (is %s in use?)", o.Listen)
	}
	return srv, nil
}
