package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/xpeditis/notify/pkg/auth"
)

func runToken(args []string) error {
	fs := flag.NewFlagSet("token", flag.ExitOnError)
	user := fs.String("user", "user-1", "user id (sub)")
	org := fs.String("org", "org-1", "organization id")
	role := fs.String("role", "ADMIN", "role")
	ttl := fs.Duration("ttl", 12*time.Hour, "lifetime")
	secret := fs.String("secret", envOr("JWT_SECRET", auth.DevSecret), "HS256 secret (default: $JWT_SECRET, else the development secret)")
	issuer := fs.String("issuer", os.Getenv("JWT_ISSUER"), "iss claim")
	audience := fs.String("audience", os.Getenv("JWT_AUDIENCE"), "aud claim")
	_ = fs.Parse(args)
	tok, err := auth.Mint(*secret, auth.MintOptions{UserID: *user, OrganizationID: *org, Role: *role, TTL: *ttl, Issuer: *issuer, Audience: *audience})
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
