/// A cell read from an entity source (an SQL column value), before it is mapped to a model input.
public enum EntityValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
}
