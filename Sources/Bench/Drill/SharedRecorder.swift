import Routing
import Synchronization

/// The drill's recorder, shared by every synthetic session and the watcher.
final class SharedRecorder: Sendable {
    private let state: Mutex<DrillRecorder>

    init(_ recorder: DrillRecorder) { state = Mutex(recorder) }

    func withLock<T>(_ body: (inout DrillRecorder) -> T) -> T {
        state.withLock { body(&$0) }
    }
}
