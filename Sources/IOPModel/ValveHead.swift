// The valve model's trained leak score: empty until examples/valve-leak/train.py writes it, and the
// zoo then keeps the seeded weights (the score then detects nothing).
enum ValveHead {
    static let weights: [Float] = []
    static let bias: [Float] = []
    static let threshold: Float = 0.5
    static let consecutive = 2
}
