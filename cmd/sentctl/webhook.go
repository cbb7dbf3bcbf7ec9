package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/registry/wire"
)

func init() {
	commands["webhook"] = command{summary: "webhook subscriptions: add, list, rm, enable, rotate-secret, deliveries, redeliver", run: runWebhook,
		verbs: []string{"add", "list", "rm", "enable", "rotate-secret", "deliveries", "redeliver"}}
}

const webhookUsage = "usage: sentctl webhook add|list|rm|enable|rotate-secret|deliveries|redeliver [flags]"

// runWebhook is `sentctl webhook <verb>`.
func runWebhook(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New(webhookUsage)}
	}
	verb := args[0]
	fs := newFlags("webhook "+verb, stderr)
	var (
		rf             registryFlags
		ns             wire.NewSubscription
		events, models string
		id, delivery   string
		grace          time.Duration
		need           []string
	)
	rf.register(fs)
	out := outputFlag(fs)
	switch verb {
	case "add":
		fs.StringVar(&ns.URL, "url", "", "the endpoint deliveries are POSTed to (required)")
		fs.StringVar(&events, "events", "", "event types, comma-separated (default: all): "+strings.Join(wire.EventTypes, ", "))
		fs.StringVar(&models, "models", "", "models, comma-separated (default: all)")
		fs.StringVar(&ns.Description, "description", "", "what the endpoint is")
		need = []string{"url"}
	case "rm", "enable", "deliveries":
		fs.StringVar(&id, "id", "", "subscription ID (required)")
		need = []string{"id"}
	case "redeliver":
		fs.StringVar(&id, "id", "", "subscription ID (required)")
		fs.StringVar(&delivery, "delivery", "", "delivery ID, msg_… (required)")
		need = []string{"id", "delivery"}
	case "rotate-secret":
		fs.StringVar(&id, "id", "", "subscription ID (required)")
		fs.DurationVar(&grace, "grace", 24*time.Hour, "how long the old secret keeps signing beside the new one (0: stop it now, for a leaked secret)")
		need = []string{"id"}
	case "list":
	default:
		return usageError{fmt.Errorf("unknown verb %q; %s", verb, webhookUsage)}
	}
	if err := parse(fs, args[1:], false); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	asJSON := *out == "json"
	if err := required(fs, need...); err != nil {
		return err
	}
	client, err := rf.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch verb {
	case "add":
		ns.Events, ns.Models = config.List(events), config.List(models)
		s, err := client.Subscribe(ctx, ns)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, s)
		}
		fmt.Fprintf(stdout, "subscribed %s to %s\nsecret (shown once; receivers verify signatures with it): %s\n", s.ID, s.URL, s.Secret)
	case "list":
		subs, err := client.Subscriptions(ctx)
		if err != nil || asJSON {
			return jsonOr(stdout, subs, err)
		}
		for _, s := range subs {
			fmt.Fprintf(stdout, "%s  %s  events %s  models %s  by %s %s\n", s.ID, s.URL, orAll(s.Events), orAll(s.Models),
				s.Actor, s.CreatedAt.Format(time.RFC3339))
			if !s.DisabledAt.IsZero() {
				fmt.Fprintf(stdout, "  disabled since %s: %s (sentctl webhook enable --id %s)\n", s.DisabledAt.Format(time.RFC3339), s.DisabledReason, s.ID)
			}
			if !s.SecretRotatedAt.IsZero() {
				fmt.Fprintf(stdout, "  secret rotated %s", s.SecretRotatedAt.Format(time.RFC3339))
				if time.Now().Before(s.PreviousSecretExpiresAt) {
					fmt.Fprintf(stdout, "; the old one signs too until %s", s.PreviousSecretExpiresAt.Format(time.RFC3339))
				}
				fmt.Fprintln(stdout)
			}
		}
	case "rotate-secret":
		s, err := client.RotateSubscriptionSecret(ctx, id, &grace)
		if err != nil || asJSON {
			return jsonOr(stdout, s, err)
		}
		fmt.Fprintf(stdout, "new secret for %s (shown once; receivers verify signatures with it): %s\n", s.ID, s.Secret)
		if s.PreviousSecretExpiresAt.IsZero() {
			fmt.Fprintln(stdout, "the old secret no longer signs")
		} else {
			fmt.Fprintf(stdout, "the old secret signs beside it until %s\n", s.PreviousSecretExpiresAt.Format(time.RFC3339))
		}
	case "rm":
		if err := client.Unsubscribe(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", id)
	case "enable":
		s, err := client.EnableSubscription(ctx, id)
		if err != nil || asJSON {
			return jsonOr(stdout, s, err)
		}
		fmt.Fprintf(stdout, "enabled %s: events from now on go to %s\n", s.ID, s.URL)
	case "deliveries":
		ds, err := client.Deliveries(ctx, id)
		if err != nil || asJSON {
			return jsonOr(stdout, ds, err)
		}
		for _, d := range ds {
			last := "no attempt yet"
			if n := len(d.Attempts); n > 0 {
				a := d.Attempts[n-1]
				last = fmt.Sprintf("last %s: %s", a.Time.Format(time.RFC3339), attemptResult(a))
			}
			fmt.Fprintf(stdout, "%s  %-20s %-9s %d attempts, %s\n", d.ID, d.Type, d.Status, len(d.Attempts), last)
		}
	case "redeliver":
		d, err := client.Redeliver(ctx, id, delivery)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s queued again (%s)\n", d.ID, d.Type)
	}
	return nil
}

func attemptResult(a wire.Attempt) string {
	if a.Error != "" {
		return a.Error
	}
	if a.RetryAfter > 0 {
		return fmt.Sprintf("HTTP %d in %d ms, Retry-After %d s", a.StatusCode, a.Millis, a.RetryAfter)
	}
	return fmt.Sprintf("HTTP %d in %d ms", a.StatusCode, a.Millis)
}

func orAll(s []string) string {
	if len(s) == 0 {
		return "all"
	}
	return strings.Join(s, ",")
}

// jsonOr prints v as JSON unless err is set.
func jsonOr(w io.Writer, v any, err error) error {
	if err != nil {
		return err
	}
	return printJSON(w, v)
}
