package deploytest

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Local mirrors of the Prometheus Operator's monitoring.coreos.com/v1 PrometheusRule and ServiceMonitor: the
// fields of the CRDs that the chart and the rule files can use, for strict decoding. The operator's Go module
// (pkg/apis/monitoring) would do, but it requires newer k8s.io/api and apimachinery than the distribution is
// built with, and this module's requirements are part of the distribution's build.

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

type ruleGroup struct {
	Name                    string               `json:"name"`
	Labels                  map[string]string    `json:"labels,omitempty"`
	Interval                string               `json:"interval,omitempty"`
	QueryOffset             string               `json:"query_offset,omitempty"`
	Rules                   []prometheusRuleRule `json:"rules"`
	PartialResponseStrategy string               `json:"partial_response_strategy,omitempty"`
	Limit                   *int                 `json:"limit,omitempty"`
}

type prometheusRuleRule struct {
	Record        string             `json:"record,omitempty"`
	Alert         string             `json:"alert,omitempty"`
	Expr          intstr.IntOrString `json:"expr"`
	For           string             `json:"for,omitempty"`
	KeepFiringFor string             `json:"keep_firing_for,omitempty"`
	Labels        map[string]string  `json:"labels,omitempty"`
	Annotations   map[string]string  `json:"annotations,omitempty"`
}

type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		JobLabel          string                   `json:"jobLabel,omitempty"`
		TargetLabels      []string                 `json:"targetLabels,omitempty"`
		PodTargetLabels   []string                 `json:"podTargetLabels,omitempty"`
		Endpoints         []serviceMonitorEndpoint `json:"endpoints"`
		Selector          metav1.LabelSelector     `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		SampleLimit *uint64 `json:"sampleLimit,omitempty"`
	} `json:"spec"`
}

// podMonitor is the part of monitoring.coreos.com/v1 PodMonitor the chart renders.
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		PodMetricsEndpoints []serviceMonitorEndpoint `json:"podMetricsEndpoints"`
		Selector            metav1.LabelSelector     `json:"selector"`
		NamespaceSelector   struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
	} `json:"spec"`
}

type serviceMonitorEndpoint struct {
	Port          string              `json:"port,omitempty"`
	TargetPort    *intstr.IntOrString `json:"targetPort,omitempty"`
	Path          string              `json:"path,omitempty"`
	Scheme        string              `json:"scheme,omitempty"`
	Interval      string              `json:"interval,omitempty"`
	ScrapeTimeout string              `json:"scrapeTimeout,omitempty"`
	HonorLabels   bool                `json:"honorLabels,omitempty"`
}
