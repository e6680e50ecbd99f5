extension GatewayClientError {
    /// The error as a user reads it: which gateway, what it answered, and what that status means
    /// for them. One line, without the REST path.
    public var explanation: String {
        switch code {
        case .unreachable:
            return "cannot reach the image gateway: \(detail ?? message)"
        case .rejected:
            let gateway = url.map { "gateway \($0)" } ?? "the gateway"
            let reason = detail ?? message
            switch httpStatus ?? 0 {
            case 400:
                return "\(gateway) rejected the request (400 bad request): \(reason)"
            case 401:
                return "\(gateway) did not accept this host's munge credential (401 unauthorized): \(reason); munged must run here with the gateway's key"
            case 403:
                return "not permitted (403 forbidden from \(gateway)): \(reason)"
            case 404:
                return "not found (404 from \(gateway); an image private to other users is not shown): \(reason)"
            case 409:
                return "refused for now (409 conflict from \(gateway)): \(reason)"
            case 429:
                return "refused for now (429 too many requests from \(gateway)): \(reason)"
            case 500..<600:
                return "\(gateway) failed (\(httpStatus ?? 0)): \(reason)"
            default:
                return "\(gateway) answered HTTP \(httpStatus ?? 0): \(reason)"
            }
        default:
            return message
        }
    }
}
