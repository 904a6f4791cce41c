package main

import (
	"context"
	"fmt"
	"time"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/cmd/cli"
)

func runToken(_ context.Context, args []string, io cli.Stdio) error {
	c := cli.New("notifyctl", "token", "Mints an HS256 JWT that notifyd and the services accept, and prints it.",
		`TOKEN=$(notifyctl token -user user-7 -org org-42 -role ADMIN)`,
		`curl -H "Authorization: Bearer $(notifyctl token -user user-7 -org org-42)" http://127.0.0.1:8080/api/v1/notifications`,
		`JWT_SECRET=... notifyctl token -user alice -org org-1 -role USER -ttl 1h -issuer xpeditis`)
	user := c.FS.String("user", "user-1", "user id (the sub claim)")
	org := c.FS.String("org", "org-1", "organization id (the organizationId claim)")
	role := c.FS.String("role", "ADMIN", "role (ADMIN, MANAGER, USER, …)")
	ttl := c.FS.Duration("ttl", 12*time.Hour, "lifetime of the token")
	var secret, issuer, audience string
	c.SecretFlag(&secret)
	c.FromEnv(&issuer, "issuer", "JWT_ISSUER", "", "none", "iss claim")
	c.FromEnv(&audience, "audience", "JWT_AUDIENCE", "", "none", "aud claim")
	if err := c.Parse(args, io); err != nil {
		return err
	}
	tok, err := auth.Mint(secret, auth.MintOptions{UserID: *user, OrganizationID: *org, Role: *role, TTL: *ttl, Issuer: issuer, Audience: audience})
	if err != nil {
		return err
	}
	fmt.Fprintln(io.Out, tok)
	return nil
}
