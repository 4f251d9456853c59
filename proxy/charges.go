package proxy

import (
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// Allowance is a per-request amount the operator grants for what a request
// cannot bound: USD, or a number of tokens priced at the request's worst
// input rate (and counted toward its price tier). Exactly one is set.
type Allowance struct {
	// USD is the amount in nano-USD.
	USD budget.Money
	// Tokens is a number of input tokens.
	Tokens int64
}

// Hosted containers (code interpreter, hosted shell) bill a session fee by
// memory size for every 20 minutes a container lives, on top of tokens;
// the usage does not report it. OpenAI's published prices, in nano-USD.
var containerSessionFees = map[string]budget.Money{
	"1g":  30_000_000,
	"4g":  120_000_000,
	"16g": 480_000_000,
	"64g": 1_920_000_000,
}

// containerSession is how long one container session lasts.
const containerSession = 20 * time.Minute

// dearestContainerFee is charged for a container whose size the request
// does not fix, or that it refers to by id.
const dearestContainerFee budget.Money = 1_920_000_000

// containerFee returns the session fee of a container of the given memory
// limit: its own price, else the dearest.
func containerFee(memoryLimit string) budget.Money {
	if f, ok := containerSessionFees[strings.ToLower(memoryLimit)]; ok {
		return f
	}
	return dearestContainerFee
}

// usInferenceUplift is what Anthropic bills for US-only inference
// (inference_geo "us") on the models that support it: 1.1 times every
// token price.
var usInferenceUplift = pricing.Multiplier{Num: 11, Den: 10}

// priceRequest fixes what one request is reserved and charged at, and
// returns those prices: the model's prices scaled by the provider's
// price_multiplier (and by the US inference uplift when the request asks for
// it), at image rates when it carries images. The fees the usage does not
// report are added to b.fees and b.surcharge: a per-request fee, a fee per
// image, a search on every call of a search model (at the request's search
// context size, the dearest when it fixes none), and every container
// session the request may start (the upstream timeout plus the 20 minutes a
// container outlives its last use). Per-call server tools get b.callPrices,
// and their most calls at the dearest price are reserved. A model whose
// data shows a fee hardcap cannot price is refused.
func (p *Proxy) priceRequest(b *bounds, m pricing.Model, prov *Provider, name string, timeout time.Duration) (pricing.Prices, error) {
	pr := m.Prices
	if u := pr.Fees.Unpriced; len(u) > 0 {
		return pricing.Prices{}, refuse(ErrUnbounded, "The price data bills %q by %s, which hardcap cannot price, so it cannot bound the cost.", name, strings.Join(u, ", "))
	}
	var err error
	if pr, err = pr.Scale(prov.PriceMultiplier); err != nil {
		return pricing.Prices{}, err
	}
	if b.geoUplift {
		if pr, err = pr.Scale(usInferenceUplift); err != nil {
			return pricing.Prices{}, err
		}
	}
	if b.images > 0 {
		pr = pr.WithMedia()
	}
	var fees budget.Money
	add := func(v budget.Money, times int64) {
		if err != nil || v == 0 || times == 0 {
			return
		}
		if times > int64(budget.MaxMoney)/int64(v) {
			err = budget.ErrOverflow
			return
		}
		fees, err = fees.Add(v * budget.Money(times))
	}
	add(pr.Fees.Request, 1)
	add(pr.Fees.Image, b.images)
	if b.searchEveryCall {
		f := pr.Fees.Search.At(b.searchSize)
		if f == 0 {
			a, ok := prov.Allowances["web_search"]
			if !ok || a.USD == 0 {
				return pricing.Prices{}, refuse(ErrUnbounded, "%q searches the web on every call and the price data has no search price for it. An operator can set one with providers.%s.allowances.web_search (USD per call).", name, prov.Name)
			}
			f = a.USD
		}
		add(f, 1)
	}
	if len(b.containers) > 0 {
		// A container lives until 20 minutes after its last use.
		sessions := int64((timeout + 2*containerSession - 1) / containerSession)
		for _, c := range b.containers {
			f, serr := prov.PriceMultiplier.Money(c)
			if serr != nil {
				return pricing.Prices{}, serr
			}
			add(max(f, pr.Fees.CodeSession), sessions)
		}
	}
	// Per-call server tools: each call is charged at the larger of the
	// data's price (web search) and the operator's allowance; the most
	// calls the response may make are reserved at the dearest.
	var callReserve budget.Money
	if len(b.callTools) > 0 {
		b.callPrices = map[string]budget.Money{}
		var dearest budget.Money
		for item, t := range b.callTools {
			price := t.allowance
			if t.search {
				price = max(price, pr.Fees.Search.At(t.searchSize))
			}
			b.callPrices[item] = price
			dearest = max(dearest, price)
		}
		if b.maxToolCalls > int64(budget.MaxMoney)/max(int64(dearest), 1) {
			err = budget.ErrOverflow
		} else {
			callReserve = budget.Money(b.maxToolCalls) * dearest
		}
	}
	if err != nil {
		return pricing.Prices{}, refuse(budget.ErrOverflow, "The fees of this request overflow.")
	}
	if b.fees, err = b.fees.Add(fees); err == nil {
		b.surcharge, err = b.surcharge.Add(fees)
	}
	if err == nil {
		b.fees, err = b.fees.Add(callReserve)
	}
	if err != nil {
		return pricing.Prices{}, refuse(budget.ErrOverflow, "The fees of this request overflow.")
	}
	return pr, nil
}
