package natsx_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// startServer runs a bare NATS server (no JetStream) with opts on a random
// loopback port and stops it at cleanup.
func startServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", -1, true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return srv
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each way of signing in that config.NATSAuth offers reaches a server that
// requires it, and the same server refuses a client without credentials.
func TestConnectSignsInWithEachMethod(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := writeFile(t, "user.nk", seed)

	for _, tc := range []signInCase{
		{name: "user and password", server: func(o *server.Options) { o.Users = []*server.User{{Username: "svc", Password: "pw-0123456789"}} },
			auth: config.NATSAuth{User: "svc", Password: "pw-0123456789"}},
		{name: "token", server: func(o *server.Options) { o.Authorization = "tok-0123456789" }, auth: config.NATSAuth{Token: "tok-0123456789"}},
		{name: "nkey seed file", server: func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, auth: config.NATSAuth{NKeySeedFile: seedFile}},
		operatorMode(t),
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := &server.Options{}
			tc.server(opts)
			srv := startServer(t, opts)
			if tc.started != nil {
				tc.started(srv)
			}
			nc, err := natsx.Connect(srv.ClientURL(), tc.auth, "auth-test", testkit.Logger())
			if err != nil {
				t.Fatalf("connect with %s: %v", tc.auth, err)
			}
			defer nc.Close()
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if _, err := natsx.Connect(srv.ClientURL(), config.NATSAuth{}, "anonymous", testkit.Logger()); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
				t.Fatalf("a client without credentials got in (err %v)", err)
			}
		})
	}
}

type signInCase struct {
	name    string
	server  func(*server.Options)
	auth    config.NATSAuth
	started func(*server.Server)
}

// operatorMode is a server trusting an operator key, with one account and
// a user of it whose JWT and seed are in a .creds file, as nsc makes them.
func operatorMode(t testing.TB) signInCase {
	t.Helper()
	operator, _ := nkeys.CreateOperator()
	operatorPub, _ := operator.PublicKey()
	account, _ := nkeys.CreateAccount()
	accountPub, _ := account.PublicKey()
	accountJWT, err := jwt.NewAccountClaims(accountPub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()
	uc := jwt.NewUserClaims(userPub)
	uc.IssuerAccount = accountPub
	userJWT, err := uc.Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, userSeed)
	if err != nil {
		t.Fatal(err)
	}
	return signInCase{
		name: "creds file",
		server: func(o *server.Options) {
			o.TrustedKeys = []string{operatorPub}
			o.AccountResolver = &server.MemAccResolver{}
		},
		started: func(srv *server.Server) {
			if err := srv.AccountResolver().Store(accountPub, accountJWT); err != nil {
				t.Fatal(err)
			}
		},
		auth: config.NATSAuth{CredsFile: writeFile(t, "user.creds", creds)},
	}
}

// A connection error names the server without the password or token that
// its URL may carry.
func TestConnectErrorHidesURLSecrets(t *testing.T) {
	srv := startServer(t, &server.Options{Users: []*server.User{{Username: "svc", Password: "right-password"}}})
	u := strings.Replace(srv.ClientURL(), "nats://", "nats://svc:wrong-password@", 1)
	_, err := natsx.Connect(u, config.NATSAuth{}, "auth-test", testkit.Logger())
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
	if strings.Contains(err.Error(), "wrong-password") || !strings.Contains(err.Error(), "redacted@127.0.0.1") {
		t.Fatalf("error %q shows the password or not the server", err)
	}
	if got := natsx.RedactURL("nats://s3cret-token@a:4222, tls://u:p@b:4222,nats://c:4222"); got != "nats://redacted@a:4222,tls://redacted@b:4222,nats://c:4222" {
		t.Fatalf("RedactURL: %s", got)
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newPKI(t testing.TB) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "notify test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			writeFile(t, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	}
	p := pki{caFile: writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// A server that requires client certificates from its own CA lets in a
// service configured with NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY, and
// no one without the certificate or without trusting the server's CA.
func TestConnectWithTLSClientCertificate(t *testing.T) {
	p := newPKI(t)
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, &server.Options{
		TLS: true, TLSVerify: true, TLSTimeout: 2,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: p.pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		},
	})
	url := srv.ClientURL()

	full := config.NATSAuth{TLSCA: p.caFile, TLSCert: p.clientCert, TLSKey: p.clientKey}
	nc, err := natsx.Connect(url, full, "tls-test", testkit.Logger())
	if err != nil {
		t.Fatalf("connect with a client certificate: %v", err)
	}
	if !nc.TLSRequired() {
		t.Error("connection does not report TLS")
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	if _, err := natsx.Connect(url, config.NATSAuth{TLSCA: p.caFile}, "no-client-cert", testkit.Logger()); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	if _, err := natsx.Connect(url, config.NATSAuth{TLSCert: p.clientCert, TLSKey: p.clientKey}, "no-ca", testkit.Logger()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client that does not trust the server's CA connected (err %v)", err)
	}
}

// A file that cannot be used is reported with the variable it came from.
func TestClientOptionsNameTheBadFile(t *testing.T) {
	notPEM := writeFile(t, "garbage.pem", []byte("not a certificate"))
	for _, tc := range []struct {
		auth config.NATSAuth
		want string
	}{
		{config.NATSAuth{TLSCA: notPEM}, "NATS_TLS_CA"},
		{config.NATSAuth{TLSCert: notPEM, TLSKey: notPEM}, "NATS_TLS_CERT/NATS_TLS_KEY"},
		{config.NATSAuth{NKeySeedFile: notPEM}, "NATS_NKEY_SEED"},
	} {
		if _, err := natsx.ClientOptions(tc.auth); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v does not name %s", tc.auth, err, tc.want)
		}
	}
}
