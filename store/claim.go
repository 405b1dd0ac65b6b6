package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hookferry/hookferry/webhook"
	"gorm.io/gorm"
)

// Claim is a delivery leased to this worker.
type Claim struct {
	DeliveryID int64
	ClaimSeq   int64 // the fence: a result is written only while it still matches
	EventID    string
	WebhookID  string
	TenantID   string
	UserID     string
	Ordered    bool
	URL        string
	// Secret is the webhook's signing key; PreviousKeys the keys a rotation
	// replaced, which sign beside it until they expire.
	Secret       string
	PreviousKeys []webhook.PreviousKey
	Payload      []byte
	Attempts     int
	SchedulePos  int
	// LeasedUntil is the end of the lease as the database wrote it, on the
	// database's clock (PostgreSQL's now()); compare it there (Startable).
	LeasedUntil time.Time
}

// ClaimRequest says what Claim may take.
type ClaimRequest struct {
	Limit int           // at most this many deliveries
	Lease time.Duration // leased for this long from the database's now
	// PerWebhook caps what one claim takes of one webhook (default Limit);
	// WebhookRoom lowers the cap for some webhooks. Within the caps, a claim
	// takes every webhook's oldest due delivery before anyone's second, so a
	// webhook's backlog does not crowd out the others.
	PerWebhook  int
	WebhookRoom map[string]int
	// ExcludeWebhooks, ExcludeTenants and ExcludeUsers are skipped: the
	// caller holds enough of their work already.
	ExcludeWebhooks []string
	ExcludeTenants  []string
	ExcludeUsers    []webhook.Owner
}

// scanRows is how many due rows a claim of limit looks at (oldest due first)
// before it shares them out between webhooks: eight per row it may take, so
// that webhooks behind another's backlog get their share, up to claimScan. A
// claim costs what it looks at: looking at 4096 rows to take a hot webhook's
// 16 made a backlog drain at most ~1,200/s on either database.
func scanRows(limit int) int { return min(claimScan, max(8*limit, 256)) }

const claimScan = 4096

type claimRow struct {
	ID              int64
	ClaimSeq        int64
	LeasedUntil     time.Time
	EventID         string
	WebhookID       string
	TenantID        string
	UserID          string
	Ordered         bool
	Attempts        int
	SchedulePos     int
	URL             string
	Secret          string
	PreviousSecrets string
	Payload         []byte
}

// Claim leases up to req.Limit due deliveries of active webhooks, oldest due
// first. It skips rows another worker holds (never waits for them), rows not
// yet due or held for a paused webhook, the excluded webhooks and tenants, and
// of an ordered webhook every delivery but its oldest pending one, and that
// one too while any delivery of the webhook is leased: an ordered webhook has
// at most one delivery leased at a time.
func (s *Store) Claim(ctx context.Context, req ClaimRequest) (_ []Claim, err error) {
	defer wrap(&err, "store.Claim")
	if req.Limit <= 0 {
		return nil, nil
	}
	now := s.clock()
	dbNow, nowArgs := s.dialect.now(now)
	perWebhook := req.PerWebhook
	if perWebhook <= 0 {
		perWebhook = req.Limit
	}
	// What a row must be to be claimed, and its webhook.
	claimable := func(d, dueBy string) string {
		return d + ".status = 'PENDING' AND " + dueBy + " AND (" + d + ".leased_until IS NULL OR " + d + ".leased_until <= " + dbNow + ")"
	}
	dueArgs := append([]any{now}, nowArgs...)
	hook := []string{
		"w2.status = 'ACTIVE'",
		`(NOT w2.ordered OR (
			NOT EXISTS (SELECT 1 FROM deliveries d3 WHERE d3.webhook_id = d2.webhook_id AND d3.status = 'PENDING' AND d3.id < d2.id)
			AND NOT EXISTS (SELECT 1 FROM deliveries d4 WHERE d4.webhook_id = d2.webhook_id AND d4.status = 'PENDING'
				AND d4.leased_until IS NOT NULL AND d4.leased_until > ` + dbNow + `)))`,
	}
	hookArgs := append([]any{}, nowArgs...)
	if len(req.ExcludeWebhooks) > 0 {
		hook = append(hook, "w2.id NOT IN ?")
		hookArgs = append(hookArgs, req.ExcludeWebhooks)
	}
	if len(req.ExcludeTenants) > 0 {
		hook = append(hook, "w2.tenant_id NOT IN ?")
		hookArgs = append(hookArgs, req.ExcludeTenants)
	}
	if len(req.ExcludeUsers) > 0 {
		users := make([]string, len(req.ExcludeUsers))
		for i, u := range req.ExcludeUsers {
			users[i] = "(w2.tenant_id = ? AND w2.user_id = ?)"
			hookArgs = append(hookArgs, u.TenantID, u.UserID)
		}
		hook = append(hook, "NOT ("+strings.Join(users, " OR ")+")")
	}
	// The oldest due rows (their webhooks' own share at most), ranked within
	// their webhook below; then round by round: every webhook's first, then
	// every webhook's second, up to its cap.
	var scan string
	var args []any
	if len(req.ExcludeWebhooks)+len(req.ExcludeTenants)+len(req.ExcludeUsers) == 0 {
		// A walk of ix_deliveries_due, oldest first, that stops at its
		// LIMIT. The webhook's conditions are a scalar subquery, which
		// PostgreSQL never turns into a join, so the walk stays one whatever
		// the statistics say (stale ones, taken while a backlog was held,
		// made it hash-join every due row: 0.6 s a claim at 1,000,000).
		scan = `SELECT d2.id, d2.webhook_id, d2.next_attempt_at FROM deliveries d2
			WHERE ` + claimable("d2", "d2.next_attempt_at <= ?") + ` AND d2.webhook_id = (SELECT w2.id FROM webhooks w2 WHERE w2.id = d2.webhook_id AND ` + strings.Join(hook, " AND ") + `)
			ORDER BY d2.next_attempt_at, d2.id LIMIT ` + boundLimit
		args = append(append(dueArgs, hookArgs...), max(scanRows(req.Limit), req.Limit))
	} else {
		// Some webhooks are skipped: a walk of everybody's due rows would
		// pass all of theirs (a backlog of 1,000,000 made every claim read
		// it). Instead each other active webhook gives its oldest due rows,
		// as many as it may take, from ix_deliveries_webhook_due.
		most := perWebhook
		for _, n := range req.WebhookRoom {
			most = max(most, n)
		}
		// The webhook's rows as a range of ix_deliveries_webhook_due, from
		// (w2.id) to (w2.id, now), in its order. Not as webhook_id = w2.id:
		// with an equality PostgreSQL drops webhook_id from the order and may
		// walk ix_deliveries_due for each webhook instead (it did, misjudging
		// the webhook's share from its statistics: 200 ms a webhook at
		// 1,000,000 due).
		own := `SELECT d5.id, d5.webhook_id, d5.next_attempt_at FROM deliveries d5
			WHERE d5.webhook_id >= w2.id AND ` + claimable("d5", "(d5.webhook_id, d5.next_attempt_at) <= (w2.id, ?)") + `
			ORDER BY d5.webhook_id, d5.next_attempt_at, d5.id LIMIT ` + boundLimit
		scan = `SELECT d2.id, d2.webhook_id, d2.next_attempt_at FROM ` + s.dialect.eachWebhooksRows(own) + `
			WHERE ` + strings.Join(hook, " AND ") + ` ORDER BY d2.next_attempt_at, d2.id LIMIT ` + boundLimit
		args = append(append(append(dueArgs, most), hookArgs...), max(scanRows(req.Limit), req.Limit))
	}
	capSQL, capArgs := "CAST(? AS INTEGER)", []any{perWebhook}
	if len(req.WebhookRoom) > 0 {
		capSQL = "CASE r.webhook_id"
		capArgs = capArgs[:0]
		for id, n := range req.WebhookRoom {
			capSQL += " WHEN CAST(? AS TEXT) THEN CAST(? AS INTEGER)"
			capArgs = append(capArgs, id, n)
		}
		capSQL += " ELSE CAST(? AS INTEGER) END"
		capArgs = append(capArgs, perWebhook)
	}
	due := `SELECT r.id FROM (SELECT s.id, s.webhook_id, s.next_attempt_at,
			ROW_NUMBER() OVER (PARTITION BY s.webhook_id ORDER BY s.next_attempt_at, s.id) AS rank
			FROM (` + scan + `) s) r
		WHERE r.rank <= ` + capSQL + ` ORDER BY r.rank, r.next_attempt_at, r.id LIMIT ` + boundLimit
	args = append(append(args, capArgs...), req.Limit)
	var rows []claimRow
	err = s.relaxedTransaction(ctx, func(tx *gorm.DB) error {
		var err error
		leaseSQL, leaseArgs := s.dialect.leaseEnd(now, req.Lease)
		rows, err = s.dialect.claim(tx, due, args, leaseSQL, leaseArgs)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Claim, len(rows))
	type keys struct {
		secret   string
		previous []webhook.PreviousKey
	}
	opened := map[string]keys{} // once per webhook of the batch
	for i, r := range rows {
		k, ok := opened[r.WebhookID]
		if !ok {
			// A key that cannot be opened leaves the claim's secret empty: the
			// sender refuses it as a failure on our side (Internal).
			var err error
			if k.secret, err = s.openSecret(r.Secret); err == nil {
				if k.previous, err = s.openPrevious(r.PreviousSecrets); err != nil {
					k.secret = ""
				}
			}
			if err != nil && s.log != nil {
				s.log.Error("store: cannot open a signing secret", "webhook", r.WebhookID, "error", err)
			}
			opened[r.WebhookID] = k
		}
		out[i] = Claim{DeliveryID: r.ID, ClaimSeq: r.ClaimSeq, EventID: r.EventID, WebhookID: r.WebhookID,
			TenantID: r.TenantID, UserID: r.UserID, Ordered: r.Ordered, URL: r.URL,
			Secret: k.secret, PreviousKeys: k.previous, Payload: r.Payload,
			Attempts: r.Attempts, SchedulePos: r.SchedulePos, LeasedUntil: r.LeasedUntil.UTC()}
	}
	// The order of RETURNING is not promised: restore the claim order.
	sortClaims(out)
	return out, nil
}

// boundLimit is a LIMIT whose value is bound. SQLite's planner reads the value
// of a plain LIMIT ?, and then compiles the statement again whenever the value
// changes (a claim's limit is the room left: it changes all the time); a cast
// hides the value from the planner.
const boundLimit = "CAST(? AS INTEGER)"

// ClaimRef names a claim: the delivery and the fence it was claimed with.
type ClaimRef struct {
	DeliveryID int64
	ClaimSeq   int64
}

// Startable reports which of refs may start an attempt now: the claim is still
// the delivery's (its claim_seq unchanged: not released, redelivered or taken
// over), the delivery is pending, its webhook exists and is active, and the
// lease the claim wrote lasts at least within longer on the database's clock,
// so that the attempt ends before anyone else may take the delivery over. It
// reads committed state: a pause, delete or erase committed before the call
// makes its webhook's claims unstartable. On SQLite it reads on a connection
// of its own, which never waits for the writer.
func (s *Store) Startable(ctx context.Context, refs []ClaimRef, within time.Duration) (_ map[int64]bool, err error) {
	defer wrap(&err, "store.Startable(%d)", len(refs))
	ok := make(map[int64]bool, len(refs))
	seq := make(map[int64]int64, len(refs))
	for _, r := range refs {
		seq[r.DeliveryID] = r.ClaimSeq
	}
	for len(refs) > 0 {
		chunk := refs[:min(len(refs), 500)]
		refs = refs[len(chunk):]
		ids := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, r := range chunk {
			ids[i], marks[i] = r.DeliveryID, s.dialect.param(i+1)
		}
		bound, boundArgs := s.dialect.after(s.clock(), within, len(chunk)+1)
		// deliveries alone in FROM, the webhook a scalar subquery: a lookup
		// of each id by the primary key whatever the statistics say (with
		// none yet, PostgreSQL went through every pending row of the webhooks).
		q := fmt.Sprintf(`SELECT d.id, d.claim_seq FROM deliveries d
			WHERE d.id IN (%s) AND d.status = 'PENDING' AND (SELECT w.status FROM webhooks w WHERE w.id = d.webhook_id) = '%s' AND d.leased_until >= %s`,
			strings.Join(marks, ", "), webhook.StatusActive, bound)
		rows, err := s.revisions.reader.QueryContext(ctx, q, append(ids, boundArgs...)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, claimSeq int64
			if err := rows.Scan(&id, &claimSeq); err != nil {
				_ = rows.Close()
				return nil, err
			}
			ok[id] = seq[id] == claimSeq
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return ok, nil
}
