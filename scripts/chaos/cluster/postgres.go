package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/xpeditis/notify/pkg/postgres"
)

// Postgres is the cluster's private PostgreSQL: its own data directory and
// port, so that stopping it touches nothing else on the machine.
type Postgres struct {
	*Proc
	URL  string // of database notify
	Port int
}

// pgBinDir finds initdb and postgres: PATH, else the newest of
// /usr/lib/postgresql/*/bin (Debian), as scripts/with-postgres.sh does.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range append(dirs, "/usr/local/pgsql/bin") {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin; on Debian: apt-get install postgresql")
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// pgCredential runs PostgreSQL as the postgres user when we are root
// (it refuses to run as root).
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return nil, fmt.Errorf("running as root and no postgres or nobody user for PostgreSQL: %w", err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) startPostgres(ctx context.Context) error {
	bin, err := pgBinDir()
	if err != nil {
		return err
	}
	cred, err := pgCredential()
	if err != nil {
		return err
	}
	data := filepath.Join(c.Dir, "pgdata")
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	ports, err := c.freePorts(1)
	if err != nil {
		return err
	}
	port := ports[0]
	p, err := c.start(ProcSpec{
		Name: "postgres", Path: filepath.Join(bin, "postgres"),
		Args: []string{"-D", data, "-p", strconv.Itoa(port), "-k", data,
			"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"},
		Credential: cred, LogPath: filepath.Join(c.Dir, "logs", "postgres.log"),
		StopSignal: syscall.SIGINT, StopWait: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	c.Postgres = &Postgres{Proc: p, Port: port, URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/notify?sslmode=disable", port)}
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return poll(ctx, 30*time.Second, "PostgreSQL to accept connections", func() error {
		db, err := postgres.Open(ctx, admin, 1)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, "CREATE DATABASE notify")
		return err
	})
}

// poll calls check until it succeeds or timeout passes; the error says
// what was last seen.
func poll(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}
