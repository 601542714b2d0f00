//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Report is one run of the benchmarks, as written to report.json.
type Report struct {
	Date      time.Time  `json:"date"`
	Command   string     `json:"command"`
	Quick     bool       `json:"quick"`
	Took      float64    `json:"took_s"`
	Machine   Machine    `json:"machine"`
	Scenarios []Scenario `json:"scenarios"`
	// Series are figures over time (disk usage after expiry), for the curious.
	Series map[string][]Point `json:"series,omitempty"`
	Notes  []string           `json:"notes,omitempty"`
}

// Point is one sample of a series: seconds since its start, and a value.
type Point struct {
	T float64 `json:"t_s"`
	V float64 `json:"v"`
}

// Scenario is one figure, with the limit or baseline measured in the same run it is read
// against. A figure that was not measured has a nil Figure and says why in Note.
type Scenario struct {
	Name      string   `json:"name"`
	Section   string   `json:"section"`
	Title     string   `json:"title"`
	Figure    *float64 `json:"figure"`
	Unit      string   `json:"unit"`
	LimitName string   `json:"limit_name,omitempty"`
	Limit     *float64 `json:"limit"`
	LimitUnit string   `json:"limit_unit,omitempty"`
	Ratio     *float64 `json:"ratio"`
	Goal      string   `json:"goal,omitempty"`
	GoalMet   *bool    `json:"goal_met,omitempty"`
	Command   string   `json:"command"`
	Note      string   `json:"note,omitempty"`
}

// add appends a measured figure.
func (r *Report) add(s Scenario, figure float64) *Scenario {
	s.Figure = &figure
	r.Scenarios = append(r.Scenarios, s)
	return &r.Scenarios[len(r.Scenarios)-1]
}

// against sets the scenario's limit and the ratio figure/limit.
func (s *Scenario) against(name string, limit float64, unit string) *Scenario {
	s.LimitName, s.Limit, s.LimitUnit = name, &limit, unit
	if limit != 0 && s.Figure != nil {
		ratio := *s.Figure / limit
		s.Ratio = &ratio
	}
	return s
}

// goal records a goal, in words, and whether the figure meets it.
func (s *Scenario) goal(text string, met bool) *Scenario {
	s.Goal, s.GoalMet = text, &met
	return s
}

// JSON renders the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return append(b, '\n'), nil
}

// Markdown renders the report for people.
func (r *Report) Markdown() string {
	var b strings.Builder
	title := "Keel benchmark report"
	if r.Quick {
		title += " (quick: small sizes, figures indicative only)"
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	fmt.Fprintf(&b, "Generated %s by `%s` in %s.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Command,
		(time.Duration(r.Took * float64(time.Second))).Round(time.Second))
	m := r.Machine
	fmt.Fprintf(&b, "Machine: %d CPUs (nproc), %s, %s MiB RAM, %s/%s, Linux %s, %s. ", m.NProc, orUnknown(m.CPU),
		thousands(float64(m.MemTotalMiB)), m.OS, m.Arch, orUnknown(m.Kernel), m.GoVersion)
	fmt.Fprintf(&b, "Data directories under `%s` (%s). ", m.DataDir, orUnknown(m.DataFS))
	fmt.Fprintf(&b, "Load average (1, 5, 15 min) at start %s, at end %s: the machine may be shared, "+
		"so compare ratios (figure / limit measured in the same run) rather than raw figures.\n\n", orUnknown(m.LoadStart), orUnknown(m.LoadEnd))
	b.WriteString("Everything runs on loopback against the real `keel-relay` binary, each relay in its own process " +
		"with the default configuration except where a scenario says otherwise. Goals are targets, not enforced.\n")
	section := ""
	for _, s := range r.Scenarios {
		if s.Section != section {
			section = s.Section
			fmt.Fprintf(&b, "\n## %s\n\n", section)
			b.WriteString("| scenario | figure | limit or baseline (same run) | ratio | goal |\n|---|---|---|---|---|\n")
		}
		limit := ""
		if s.Limit != nil {
			limit = fmt.Sprintf("%s: %s %s", s.LimitName, num(*s.Limit), s.LimitUnit)
		}
		ratio := ""
		if s.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *s.Ratio)
		}
		goal := s.Goal
		if s.GoalMet != nil {
			if *s.GoalMet {
				goal += " — met"
			} else {
				goal += " — **not met**"
			}
		}
		figure := s.Note
		if s.Figure != nil {
			figure = num(*s.Figure) + " " + s.Unit
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", s.Title, figure, limit, ratio, goal)
	}
	b.WriteString("\n## How each figure was made\n\n")
	for _, s := range r.Scenarios {
		note := ""
		if s.Note != "" && s.Figure != nil {
			note = " " + s.Note
		}
		fmt.Fprintf(&b, "- `%s` — %s.%s\n", s.Name, s.Command, note)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// num formats a figure with three significant digits at most, thousands separated.
func num(f float64) string {
	a := math.Abs(f)
	switch {
	case math.Round(a) >= 1000:
		return thousands(math.Round(f))
	case a >= 100:
		return fmt.Sprintf("%.0f", f)
	case a >= 10:
		return fmt.Sprintf("%.1f", f)
	case a >= 1:
		return fmt.Sprintf("%.2f", f)
	case a == 0:
		return "0"
	default:
		return fmt.Sprintf("%.3g", f)
	}
}

// thousands formats a whole number with comma separators.
func thousands(f float64) string {
	s := fmt.Sprintf("%.0f", math.Abs(f))
	var b strings.Builder
	if f < 0 && s != "0" {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
