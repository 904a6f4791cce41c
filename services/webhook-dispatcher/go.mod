module github.com/xpeditis/notify/services/webhook-dispatcher

go 1.26.0

require github.com/xpeditis/notify/pkg v0.0.0

replace github.com/xpeditis/notify/pkg => ../../pkg
