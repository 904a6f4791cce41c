package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// NATSAuth is how a client proves who it is to a NATS server and how it
// checks the server: at most one of a credentials file, an NKey seed file,
// a user and password, or a token, plus optional TLS. Its String form names
// the method and the files, never a secret.
type NATSAuth struct {
	CredsFile    string // NATS_CREDS: .creds file (user JWT and NKey seed)
	NKeySeedFile string // NATS_NKEY_SEED: file holding an NKey user seed
	User         string // NATS_USER
	Password     string // NATS_PASSWORD (secret)
	Token        string // NATS_TOKEN (secret)
	TLSCA        string // NATS_TLS_CA: PEM file of the CAs the server's certificate must chain to
	TLSCert      string // NATS_TLS_CERT: client certificate (PEM), with NATS_TLS_KEY
	TLSKey       string // NATS_TLS_KEY: the client certificate's private key (PEM)
}

// Method names how the client authenticates: "creds", "nkey", "user",
// "token" or "none".
func (a NATSAuth) Method() string {
	switch {
	case a.CredsFile != "":
		return "creds"
	case a.NKeySeedFile != "":
		return "nkey"
	case a.User != "":
		return "user"
	case a.Token != "":
		return "token"
	}
	return "none"
}

// TLS reports whether the client is configured to use TLS.
func (a NATSAuth) TLS() bool { return a.TLSCA != "" || a.TLSCert != "" }

// String describes the configuration without its secrets, so that a
// configuration printed with %v or logged leaks nothing.
func (a NATSAuth) String() string {
	parts := []string{"auth=" + a.Method()}
	switch a.Method() {
	case "creds":
		parts = append(parts, "creds="+a.CredsFile)
	case "nkey":
		parts = append(parts, "seed="+a.NKeySeedFile)
	case "user":
		parts = append(parts, "user="+a.User)
	}
	if a.TLSCA != "" {
		parts = append(parts, "tls_ca="+a.TLSCA)
	}
	if a.TLSCert != "" {
		parts = append(parts, "tls_cert="+a.TLSCert)
	}
	return strings.Join(parts, " ")
}

// ReadNATSAuth reads the NATS_CREDS, NATS_NKEY_SEED, NATS_USER,
// NATS_PASSWORD, NATS_TOKEN and NATS_TLS_* variables and records every
// problem: two ways of authenticating at once, half of a pair, and files
// that cannot be read (named, so that a wrong mount is found at start, not
// at the first reconnect).
func ReadNATSAuth(e *Env) NATSAuth {
	a := NATSAuth{
		CredsFile:    e.String("NATS_CREDS", ""),
		NKeySeedFile: e.String("NATS_NKEY_SEED", ""),
		User:         e.String("NATS_USER", ""),
		Password:     e.String("NATS_PASSWORD", ""),
		Token:        e.String("NATS_TOKEN", ""),
		TLSCA:        e.String("NATS_TLS_CA", ""),
		TLSCert:      e.String("NATS_TLS_CERT", ""),
		TLSKey:       e.String("NATS_TLS_KEY", ""),
	}
	var methods []string
	for _, m := range []struct{ name, value string }{
		{"NATS_CREDS", a.CredsFile}, {"NATS_NKEY_SEED", a.NKeySeedFile}, {"NATS_USER", a.User}, {"NATS_TOKEN", a.Token},
	} {
		if m.value != "" {
			methods = append(methods, m.name)
		}
	}
	if len(methods) > 1 {
		e.Check(fmt.Errorf("%s are set: choose one way to authenticate to NATS", strings.Join(methods, " and ")))
	}
	if a.User != "" && a.Password == "" {
		e.Check(errors.New("NATS_USER is set without NATS_PASSWORD"))
	}
	if a.Password != "" && a.User == "" {
		e.Check(errors.New("NATS_PASSWORD is set without NATS_USER"))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		e.Check(errors.New("NATS_TLS_CERT and NATS_TLS_KEY go together: set both or neither"))
	}
	for _, f := range []struct{ name, path string }{
		{"NATS_CREDS", a.CredsFile}, {"NATS_NKEY_SEED", a.NKeySeedFile},
		{"NATS_TLS_CA", a.TLSCA}, {"NATS_TLS_CERT", a.TLSCert}, {"NATS_TLS_KEY", a.TLSKey},
	} {
		if f.path != "" {
			e.Check(readable(f.name, f.path))
		}
	}
	return a
}

// readable checks that path is a file this process can open, without
// reading it (it may hold a secret).
func readable(name, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%s: %s is a directory, not a file", name, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}
