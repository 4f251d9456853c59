package pricing

import "slices"

// Layer returns a catalog that consults cats in order. For a provider and
// model name, the first catalog with a priced matching model supplies the
// prices (a matching model without input or output price is passed over);
// a ContextWindow or MaxOutputTokens that model lacks is filled from later
// catalogs' matching models and LiteLLM limit data. A provider's fallback
// providers are followed across all layers. Nil catalogs are skipped.
//
// hardcap uses Layer(userFile, Embedded()) so that a newer price file wins
// while the embedded data still covers what the file omits.
func Layer(cats ...*Catalog) *Catalog {
	out := newCatalog()
	for _, c := range cats {
		if c == nil {
			continue
		}
		for _, p := range c.order {
			q, ok := out.providers[p.id]
			if !ok {
				q = &provider{id: p.id}
				out.addProvider(q)
			}
			for _, f := range p.fallbacks {
				if !slices.Contains(q.fallbacks, f) {
					q.fallbacks = append(q.fallbacks, f)
				}
			}
			q.segs = append(q.segs, p.segs...)
		}
		out.limits = append(out.limits, c.limits...)
	}
	return out
}
