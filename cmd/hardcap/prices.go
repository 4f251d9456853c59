package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// The projects' published price files, the defaults of prices.genai_url
// and prices.litellm_url.
const (
	defaultGenAIURL   = "https://raw.githubusercontent.com/pydantic/genai-prices/main/prices/new_data/v2/data.json"
	defaultLiteLLMURL = "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
)

// staleAfter is the age past which price data is reported as old (a start
// logs a warning; status and prices check say so).
const staleAfter = 90 * 24 * time.Hour

// maxPriceFile bounds a downloaded price file.
const maxPriceFile = 64 << 20

// priceFile is one price data set hardcap can refresh.
type priceFile struct {
	// name is the data set ("genai-prices", "litellm").
	name string
	// file is its name under <data_dir>/prices/.
	file string
	// embedded is the copy built into hardcap, and when it was taken.
	embedded []byte
	asOf     time.Time
	parse    func([]byte) (*pricing.Catalog, error)
}

var priceFiles = []priceFile{
	{"genai-prices", "genai-prices-v2.json", pricing.EmbeddedGenAIPrices(), pricing.EmbeddedGenAIAsOf, pricing.ParseGenAIPrices},
	{"litellm", "litellm.json", pricing.EmbeddedLiteLLM(), pricing.EmbeddedLiteLLMAsOf, pricing.ParseLiteLLM},
}

// fetched describes a downloaded price file, in <data_dir>/prices/sources.json.
type fetched struct {
	Name    string    `json:"name"`
	URL     string    `json:"url"`
	Fetched time.Time `json:"fetched"`
	SHA256  string    `json:"sha256"`
	Bytes   int       `json:"bytes"`
}

func pricesDir(dataDir string) string { return filepath.Join(dataDir, "prices") }

// readFetched returns what prices update recorded, by data set name.
func readFetched(dataDir string) (map[string]fetched, error) {
	out := map[string]fetched{}
	b, err := os.ReadFile(filepath.Join(pricesDir(dataDir), "sources.json"))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	var list []fetched
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("prices: %s is damaged: %v; run hardcap prices update, or delete %s to use the built-in data", filepath.Join(pricesDir(dataDir), "sources.json"), err, pricesDir(dataDir))
	}
	for _, f := range list {
		out[f.Name] = f
	}
	return out, nil
}

// loadSources returns the catalog of each price data set: the copy prices
// update downloaded into the data dir, else the embedded one. A downloaded
// copy that no longer parses stops the start: falling back to older data
// could price below the provider's bill.
func loadSources(dataDir string) ([]*pricing.Catalog, error) {
	got, err := readFetched(dataDir)
	if dataDir == "" {
		got, err = map[string]fetched{}, nil
	}
	if err != nil {
		return nil, err
	}
	var cats []*pricing.Catalog
	for _, pf := range priceFiles {
		f, ok := got[pf.name]
		if !ok {
			c, err := pf.parse(pf.embedded)
			if err != nil {
				return nil, fmt.Errorf("embedded %s prices: %w", pf.name, err)
			}
			cats = append(cats, c.Describe("embedded", pf.asOf))
			continue
		}
		path := filepath.Join(pricesDir(dataDir), pf.file)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("prices: %w; run hardcap prices update, or delete %s to use the built-in data", err, pricesDir(dataDir))
		}
		c, err := pf.parse(data)
		if err != nil {
			return nil, fmt.Errorf("prices: %s: %w; run hardcap prices update, or delete %s to use the built-in data", path, err, pricesDir(dataDir))
		}
		cats = append(cats, c.Describe(f.URL, f.Fetched))
	}
	return cats, nil
}

// loadPricesFrom builds the catalog serve prices with: the data sets from
// dataDir (downloaded) or built in, prices.file, then the overrides. Every
// rate is the highest any of them gives.
func loadPricesFrom(pc PricesConfig, dataDir string) (*pricing.Catalog, error) {
	cats, err := loadSources(dataDir)
	if err != nil {
		return nil, err
	}
	if pc.File != "" {
		data, err := os.ReadFile(pc.File)
		if err != nil {
			return nil, fmt.Errorf("prices.file: %w", err)
		}
		user, err := pricing.ParseGenAIPrices(data)
		if err != nil {
			var lerr error
			if user, lerr = pricing.ParseLiteLLM(data); lerr != nil {
				return nil, fmt.Errorf("prices.file: neither genai-prices v2 (%v) nor LiteLLM format (%v)", err, lerr)
			}
		}
		asOf := time.Time{}
		if fi, err := os.Stat(pc.File); err == nil {
			asOf = fi.ModTime().UTC()
		}
		cats = append([]*pricing.Catalog{user.Describe(pc.File, asOf)}, cats...)
	}
	cat := pricing.Merge(cats...)
	if len(pc.Overrides) > 0 {
		ovs := make([]pricing.Override, len(pc.Overrides))
		for i, o := range pc.Overrides {
			ovs[i] = o.override()
		}
		if cat, err = cat.WithOverrides(ovs...); err != nil {
			return nil, fmt.Errorf("prices.overrides: %w", err)
		}
	}
	return cat, nil
}

// sourceAges describes each source and its age at now, for status and
// prices check.
func sourceAges(cat *pricing.Catalog, now time.Time) []map[string]any {
	var out []map[string]any
	for _, s := range cat.Sources() {
		e := map[string]any{"name": s.Name, "origin": s.Origin}
		if !s.AsOf.IsZero() {
			e["as_of"] = s.AsOf.UTC().Format(time.DateOnly)
			e["age_days"] = int(now.Sub(s.AsOf).Hours() / 24)
			e["stale"] = now.Sub(s.AsOf) > staleAfter
		}
		out = append(out, e)
	}
	return out
}

func pricesCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("prices: want check or update (see hardcap help)")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("prices " + sub)
	config := fs.String("config", "", "config file (default $HARDCAP_CONFIG)")
	data := fs.String("data-dir", "", "data directory (default $HARDCAP_DATA_DIR or ~/.local/share/hardcap)")
	asJSON := fs.Bool("json", false, "print JSON")
	switch sub {
	case "check":
		provider := fs.String("provider", "", "price-data provider id to check (default: the configured providers' ids)")
		if _, err := parseFlags(fs, args, 0); err != nil {
			return err
		}
		cfg, dir, err := pricesSetup(*config, *data)
		if err != nil {
			return err
		}
		cat, err := loadPricesFrom(cfg.Prices, dir)
		if err != nil {
			return err
		}
		provs := []string{*provider}
		if *provider == "" {
			provs = configuredPriceIDs(cfg)
		}
		return printCheck(stdout, cat, provs, time.Now(), *asJSON)
	case "update":
		accept := fs.Bool("accept-drops", false, "accept rates that fell by more than half")
		genaiURL := fs.String("genai-url", "", "genai-prices v2 file URL (default prices.genai_url, else the project's published file)")
		litellmURL := fs.String("litellm-url", "", "LiteLLM price file URL (default prices.litellm_url, else the project's published file)")
		if _, err := parseFlags(fs, args, 0); err != nil {
			return err
		}
		cfg, dir, err := pricesSetup(*config, *data)
		if err != nil {
			return err
		}
		urls := map[string]string{
			"genai-prices": firstSet(*genaiURL, cfg.Prices.GenAIURL, defaultGenAIURL),
			"litellm":      firstSet(*litellmURL, cfg.Prices.LiteLLMURL, defaultLiteLLMURL),
		}
		return updatePrices(ctx, stdout, cfg, dir, urls, *accept, time.Now())
	}
	return usageError(fmt.Sprintf("prices: unknown subcommand %q (want check or update)", sub))
}

func firstSet(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func pricesSetup(config, data string) (Config, string, error) {
	cfg, err := loadConfig(config)
	if err != nil {
		return cfg, "", err
	}
	dir, err := dataDir(data, cfg.DataDir)
	return cfg, dir, err
}

// configuredPriceIDs are the price-data provider ids of the configured
// providers, sorted.
func configuredPriceIDs(cfg Config) []string {
	seen := map[string]bool{}
	for name, p := range cfg.Providers {
		seen[firstSet(p.Prices, name)] = true
	}
	return slices.Sorted(func(yield func(string) bool) {
		for id := range seen {
			if !yield(id) {
				return
			}
		}
	})
}

func printCheck(w io.Writer, cat *pricing.Catalog, provs []string, now time.Time, asJSON bool) error {
	r := cat.Check(provs, now, 10)
	if asJSON {
		out := map[string]any{"sources": sourceAges(cat, now), "disagreements": disagreementsJSON(r.Disagreements),
			"overrides_below_data": disagreementsJSON(r.Overridden), "implied_tier": nonNil(r.Implied),
			"unpriced_fees": nonNil(r.Unpriced), "regional_uplift": nonNil(r.Regional)}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintln(w, "Price sources (each rate used is the highest any of them gives):")
	for _, s := range sourceAges(cat, now) {
		line := fmt.Sprintf("  %s from %s", s["name"], s["origin"])
		if d, ok := s["as_of"]; ok {
			line += fmt.Sprintf(", as of %s (%d days old)", d, s["age_days"])
			if s["stale"] == true {
				line += ": older than 90 days, run hardcap prices update"
			}
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "\n%d prices where the sources disagree by more than 1 %%:\n", len(r.Disagreements))
	writeDisagreements(w, r.Disagreements)
	if len(r.Overridden) > 0 {
		fmt.Fprintf(w, "\n%d prices set by prices.overrides below what a source gives:\n", len(r.Overridden))
		writeDisagreements(w, r.Overridden)
	}
	for _, l := range []struct {
		title string
		items []string
	}{
		{"models with no input-size tier in any source, priced with their provider's dearest long-context tier (declare one untiered with an override)", r.Implied},
		{"models refused: the data bills fees hardcap cannot price", r.Unpriced},
		{"models with a regional-processing uplift in the data (set the provider's price_multiplier when your project uses regional processing)", r.Regional},
	} {
		if len(l.items) > 0 {
			fmt.Fprintf(w, "\n%d %s:\n  %s\n", len(l.items), l.title, strings.Join(l.items, "\n  "))
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// usdPerMTok formats a rate (nano-USD per million tokens) as USD per
// million tokens.
func usdPerMTok(v int64) string { return budget.Money(v).String() }

func writeDisagreements(w io.Writer, ds []pricing.Disagreement) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  MODEL\tPRICE\tSOURCES\tUSED")
	for _, d := range ds {
		unit := " USD/Mtok"
		if d.Fee {
			unit = " USD"
		}
		var vals []string
		for _, v := range d.Values {
			vals = append(vals, v.Source+" "+usdPerMTok(v.Value))
		}
		fmt.Fprintf(tw, "  %s/%s\t%s\t%s\t%s%s\n", d.Provider, d.Model, d.Field, strings.Join(vals, "; "), usdPerMTok(d.Used), unit)
	}
	tw.Flush()
}

func disagreementsJSON(ds []pricing.Disagreement) []map[string]any {
	out := []map[string]any{}
	for _, d := range ds {
		vals := map[string]string{}
		for _, v := range d.Values {
			vals[v.Source] = usdPerMTok(v.Value)
		}
		unit := "usd_per_mtok"
		if d.Fee {
			unit = "usd"
		}
		out = append(out, map[string]any{"provider": d.Provider, "model": d.Model, "price": d.Field, "unit": unit, "sources": vals, "used": usdPerMTok(d.Used)})
	}
	return out
}

// updatePrices downloads each data set, checks it against the data in use
// and installs it in <data_dir>/prices, keeping the previous copy. A file
// that does not parse, or under which a model that priced before no longer
// prices, is refused; so is one where a rate fell by more than half, unless
// accept is set.
func updatePrices(ctx context.Context, w io.Writer, cfg Config, dir string, urls map[string]string, accept bool, now time.Time) error {
	old, err := loadSources(dir)
	if err != nil {
		return err
	}
	oldCat := pricing.Merge(old...)
	downloads := map[string][]byte{}
	next := slices.Clone(old)
	for i, pf := range priceFiles {
		data, err := download(ctx, urls[pf.name])
		if err != nil {
			return fmt.Errorf("prices update: %s: %w", pf.name, err)
		}
		c, err := pf.parse(data)
		if err != nil {
			return fmt.Errorf("prices update: %s from %s does not parse: %w", pf.name, urls[pf.name], err)
		}
		downloads[pf.name] = data
		next[i] = c.Describe(urls[pf.name], now)
	}
	newCat := pricing.Merge(next...)
	lost, drops := comparePrices(oldCat, newCat, now)
	if len(lost) > 0 {
		return fmt.Errorf("prices update: refused, %d models that priced before would not price:\n  %s", len(lost), strings.Join(firstLines(lost, 20), "\n  "))
	}
	if len(drops) > 0 && !accept {
		return fmt.Errorf("prices update: refused, %d rates fell by more than half (check them, then run again with --accept-drops):\n  %s", len(drops), strings.Join(firstLines(drops, 20), "\n  "))
	}
	pd := pricesDir(dir)
	if err := os.MkdirAll(pd, 0o700); err != nil {
		return fmt.Errorf("prices update: %w", err)
	}
	got, err := readFetched(dir)
	if err != nil {
		return err
	}
	var list []fetched
	for _, pf := range priceFiles {
		data := downloads[pf.name]
		path := filepath.Join(pd, pf.file)
		if prev, err := os.ReadFile(path); err == nil {
			if err := writeFileAtomic(path+".prev", prev); err != nil {
				return fmt.Errorf("prices update: keeping the previous copy: %w", err)
			}
		}
		if err := writeFileAtomic(path, data); err != nil {
			return fmt.Errorf("prices update: %w", err)
		}
		sum := sha256.Sum256(data)
		got[pf.name] = fetched{Name: pf.name, URL: urls[pf.name], Fetched: now.UTC(), SHA256: hex.EncodeToString(sum[:]), Bytes: len(data)}
	}
	for _, pf := range priceFiles {
		list = append(list, got[pf.name])
	}
	meta, _ := json.MarshalIndent(list, "", "  ")
	if err := writeFileAtomic(filepath.Join(pd, "sources.json"), append(meta, '\n')); err != nil {
		return fmt.Errorf("prices update: %w", err)
	}
	for _, f := range list {
		fmt.Fprintf(w, "%s: %d bytes from %s\n", f.Name, f.Bytes, f.URL)
	}
	if len(drops) > 0 {
		fmt.Fprintf(w, "%d rates fell by more than half (accepted).\n", len(drops))
	}
	fmt.Fprintf(w, "Installed in %s (previous copies kept as .prev). Restart hardcap serve to use them.\n", pd)
	return nil
}

// firstLines returns the first n lines, and a count of the rest.
func firstLines(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return append(slices.Clone(lines[:n]), fmt.Sprintf("... and %d more", len(lines)-n))
}

// download fetches a URL with a deadline and a size bound.
func download(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxPriceFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPriceFile {
		return nil, fmt.Errorf("%s is over %d bytes", url, maxPriceFile)
	}
	return data, nil
}

// comparePrices lists the models oldCat prices that newCat does not, and
// the rates and fees newCat puts below half of oldCat's, over every
// provider of oldCat.
func comparePrices(oldCat, newCat *pricing.Catalog, at time.Time) (lost, drops []string) {
	for _, prov := range oldCat.Providers() {
		for _, name := range oldCat.Names(prov) {
			o, err := oldCat.Lookup(prov, name, at)
			if err != nil {
				continue
			}
			n, err := newCat.Lookup(prov, name, at)
			if err != nil {
				lost = append(lost, prov+"/"+name)
				continue
			}
			for _, d := range pricing.Drops(o.Prices, n.Prices) {
				drops = append(drops, prov+"/"+name+" "+d)
			}
		}
	}
	return lost, drops
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so a crash or a full disk never leaves a partial
// file. The file is private to its owner.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
