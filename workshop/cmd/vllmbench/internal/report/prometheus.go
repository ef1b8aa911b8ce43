package report // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/report"

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Default PromQL of the GPU chart: the mean over a run's window ({{range}}) of the collector's nvml receiver
// metrics, averaged over the GPUs. Override them for other exporters (DCGM: DCGM_FI_DEV_GPU_UTIL / 100 ...).
const (
	DefaultGPUUtilQuery = `avg(avg_over_time(hw_gpu_utilization_ratio{hw_gpu_task="general"}[{{range}}]))`
	DefaultSMQuery      = `avg(avg_over_time(nvidia_gpu_sm_activity_ratio[{{range}}]))`
)

// Prometheus asks a Prometheus HTTP API for instant values.
type Prometheus struct {
	URL    string
	Client *http.Client
}

// Window returns the value of query (with {{range}} replaced by the window's length in seconds) evaluated at the
// window's end; NaN when the query returns no sample.
func (p Prometheus) Window(ctx context.Context, query string, start time.Time, seconds float64) (float64, error) {
	rng := strconv.Itoa(max(1, int(math.Ceil(seconds)))) + "s"
	end := start.Add(time.Duration(seconds * float64(time.Second)))
	q := url.Values{"query": {strings.ReplaceAll(query, "{{range}}", rng)},
		"time": {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.URL, "/")+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("prometheus answered HTTP %d: %.200s", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", r.Error)
	}
	if len(r.Data.Result) == 0 {
		return math.NaN(), nil
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// AddGPU fills each point's GPU utilisation and SM activity over its run (start_time + duration); a run
// without a start time keeps NaN.
func (p Prometheus) AddGPU(ctx context.Context, d *Dataset, utilQuery, smQuery string) error {
	for i := range d.Points {
		pt := &d.Points[i]
		start, ok1 := pt.Run.Num("start_time")
		dur, ok2 := pt.Run.Num("duration")
		if !ok1 || !ok2 {
			continue
		}
		t := time.UnixMilli(int64(start * 1000))
		var err error
		if pt.GPUUtil, err = p.Window(ctx, utilQuery, t, dur); err != nil {
			return err
		}
		if pt.SMActivity, err = p.Window(ctx, smQuery, t, dur); err != nil {
			return err
		}
	}
	return nil
}
