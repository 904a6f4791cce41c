package gateway

import "sync"

// onOwnStack runs fn on another goroutine and waits for it. Where a
// connection's reader spends its life parked until its socket is readable
// (without epoll, see readMessages), handling a message there (a CONNECT
// verifies a token, writes the session's record and joins the fan-out)
// would leave it holding a grown stack for good.
//
// The goroutines that run fn are pooled: a new goroutine starts with a
// small stack and a CONNECT grows it several times, each growth a copy of
// the whole stack, which was a sixth of the gateway's CPU in a connection
// storm. A pooled one keeps the stack it grew (the garbage collector
// shrinks it again while it waits).
func onOwnStack(fn func()) {
	j := jobPool.Get().(*job)
	j.fn = fn
	j.done.Add(1)
	submit(j)
	j.done.Wait()
	j.fn = nil
	jobPool.Put(j)
}

// goOnStack runs fn on a pooled goroutine without waiting for it.
func goOnStack(fn func()) {
	j := jobPool.Get().(*job)
	j.fn, j.async = fn, true
	submit(j)
}

func submit(j *job) {
	select {
	case stacks <- j:
	default:
		go stackWorker(j)
	}
}

// job is one onOwnStack call.
type job struct {
	fn    func()
	done  sync.WaitGroup // onOwnStack waits on it
	async bool           // goOnStack: nobody waits, the worker recycles the job
}

var jobPool = sync.Pool{New: func() any { return new(job) }}

// stacks hands a job to an idle worker (unbuffered: a send succeeds only
// when one waits).
var stacks = make(chan *job)

// maxIdleStacks is how many workers wait for work; more exit when done.
// Enough for the CONNECTs in flight of a connection storm on a few cores
// (each waits for a NATS round trip or two), few enough that their stacks
// (some KB each) do not count beside the connections.
const maxIdleStacks = 16

var idleStacks = make(chan struct{}, maxIdleStacks)

func stackWorker(j *job) {
	for {
		if j.async {
			fn := j.fn
			j.fn, j.async = nil, false
			jobPool.Put(j)
			fn()
		} else {
			j.fn()
			j.done.Done()
		}
		select {
		case idleStacks <- struct{}{}:
		default:
			return // enough wait already
		}
		j = <-stacks
		<-idleStacks
	}
}
