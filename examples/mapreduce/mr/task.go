package mr

// Task is the event of the MapReduce function: the driver's ("run"), a map
// task's ("map") or a reduce task's ("reduce").
type Task struct {
	Op      string `json:"op"`
	Job     string `json:"job"`
	Bucket  string `json:"bucket"`
	Input   string `json:"input"`  // object key of the input
	Size    int64  `json:"size"`   // its size in bytes
	Output  string `json:"output"` // prefix of the output objects' keys
	Maps    int    `json:"maps"`
	Reduces int    `json:"reduces"`
	Conc    int    `json:"conc"`             // tasks at once (Map's concurrency)
	RunID   string `json:"run_id,omitempty"` // names the progress counters
	// FailMap, when > 0, makes map task FailMap-1 fail its first attempt
	// after it has written half its shuffle data (FailMode "error":
	// return an error; "exit": end the process or instance abruptly).
	FailMap  int    `json:"fail_map,omitempty"`
	FailMode string `json:"fail_mode,omitempty"`

	// Map task.
	Index     int      `json:"index,omitempty"`
	Split     Split    `json:"split"`
	Splitters []string `json:"splitters,omitempty"`
	// Reduce task: how many shuffle chunks each map task wrote for it.
	Chunks []int `json:"chunks,omitempty"`
}

// MapResult is a map task's answer.
type MapResult struct {
	Chunks  []int `json:"chunks"`   // per reducer
	Bytes   int64 `json:"bytes"`    // shuffle bytes written
	WriteNs int64 `json:"write_ns"` // time spent writing them
}

// ReduceResult is a reduce task's answer.
type ReduceResult struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	ReadNs  int64 `json:"read_ns"` // time spent reading the shuffle
}

// RunResult is the driver's answer.
type RunResult struct {
	Job          string  `json:"job"`
	Maps         int     `json:"maps"`
	Reduces      int     `json:"reduces"`
	MapMs        float64 `json:"map_ms"`
	ReduceMs     float64 `json:"reduce_ms"`
	TotalMs      float64 `json:"total_ms"`
	ShuffleBytes int64   `json:"shuffle_bytes"`
	OutputBytes  int64   `json:"output_bytes"`
	Objects      int     `json:"objects"`
	// ShuffleWriteMs and ShuffleReadMs are the map and reduce tasks'
	// summed time writing and reading shuffle data.
	ShuffleWriteMs float64 `json:"shuffle_write_ms"`
	ShuffleReadMs  float64 `json:"shuffle_read_ms"`
	// Retried is how many tasks failed an attempt and were retried (seen
	// through the failure marker the injected failure leaves).
	Retried int `json:"retried"`
}

// ShuffleChunk is the most bytes of one ephemeral value of the shuffle
// (the KV value limit, 1 MiB by default).
const ShuffleChunk = 1 << 20

// OutputChunk is the most bytes of one output object written through one
// host call. Objects take 8 MiB per host call, but a process function's
// host-call frame is capped at its response limit (6 MiB by default), so
// the output is cut below both.
const OutputChunk = 4_000_000
